"""Side-by-side speed benchmarks against PyTorch (``python -m benchmarks``)."""
