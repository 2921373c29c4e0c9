"""The ``cyto`` command line: a thin layer over library functions.

Each subcommand lives in ``cyto/_commands/<name>.py`` and exposes
``add_parser(subparsers) -> argparse.ArgumentParser``; the parser sets
``func`` to a callable taking the parsed namespace and returning an exit code.
Command modules import their heavy dependencies inside ``func`` so that
``cyto --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from cyto import __version__

__all__ = ["get_parser", "main"]

# Order shown in `cyto --help`.
_COMMANDS: tuple[str, ...] = ("synth", "preprocess", "train", "embed", "analyze", "demo", "ablate")


def get_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``cyto`` command (for docs and tests).

    Returns
    -------
    parser : argparse.ArgumentParser
        The top-level parser with one subparser per subcommand.
    """
    parser = argparse.ArgumentParser(
        prog="cyto",
        description="Self-supervised profiling of protein subcellular localization.",
    )
    parser.add_argument("--version", action="version", version=f"cyto {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        module = importlib.import_module(f"cyto._commands.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cyto`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns
    -------
    code : int
        Process exit code (0 on success).
    """
    import warnings

    parser = get_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning(args.command)
            return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"cyto {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cyto {args.command}: interrupted", file=sys.stderr)
        return 130


def _show_warning(command: str) -> Any:
    """A ``warnings.showwarning`` that prints cyto's own warnings as one plain line."""
    import warnings

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if category.__module__.startswith("cyto"):
            print(f"cyto {command}: warning: {message}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
