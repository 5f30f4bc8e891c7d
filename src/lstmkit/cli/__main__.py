"""``python -m lstmkit.cli ...`` runs the command line, as ``lstmkit ...`` does."""

import sys

from . import main

sys.exit(main())
