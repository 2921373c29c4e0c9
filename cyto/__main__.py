"""``python -m cyto`` runs the command line."""

import sys

from cyto.cli import main

sys.exit(main())
