"""``python -m training.diagnostics``: see :mod:`training.diagnostics.cli`."""

import sys

from training.diagnostics.cli import main

sys.exit(main())
