"""Subcommands of the ``cyto`` command line (one module each; see :mod:`cyto.cli`)."""
