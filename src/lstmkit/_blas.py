"""Imported first, before NumPy loads OpenBLAS: its idle threads then sleep at once (after 2^4 cycles)
instead of spinning for ~0.1 s after every multi-threaded product — spinning that takes a core from the
compiled recurrent scan run right after. A value already set is kept. It takes effect only when lstmkit
is imported before NumPy; ``IDLE_SLEEPS`` says whether it did (``lstmkit info`` prints it)."""

import os
import sys

_timeout = os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
# A short timeout counts (OpenBLAS reads 2^n cycles, n clamped to [4, 30]); anything else, or unparsable, does not.
IDLE_SLEEPS = "numpy" not in sys.modules and _timeout.strip().isdigit() and int(_timeout) <= 8
