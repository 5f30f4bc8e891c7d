"""Applications built on lstmkit: the pipelines behind the command line."""
