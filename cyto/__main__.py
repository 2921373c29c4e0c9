"""``python -m cyto`` runs the command line."""

from cyto.cli import entry

entry()
