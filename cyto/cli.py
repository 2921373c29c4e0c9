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
    parser.add_argument(
        "--debug", action="store_true", help="show the Python traceback of an error"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        module = importlib.import_module(f"cyto._commands.{name}")
        module.add_parser(subparsers)
    return parser


#: Exit codes of every ``cyto`` command (docs/cli.md).
EXIT_CODES: dict[str, int] = {
    "ok": 0,
    "partial": 1,  # some inputs failed and were skipped; the rest is done
    "error": 2,  # bad argument, input or environment (file, permission, disk): nothing done
    "bad_numbers": 3,  # stopped on non-finite losses or degenerate encodings
    "busy": 4,  # another process is writing the same output
    "internal": 70,  # a bug in cyto
    "interrupted": 130,
}


def _explain(err: BaseException) -> tuple[int, str]:
    """Exit code and one sentence for an exception that reached the command line."""
    import errno

    from cyto._health import DegenerateEncodingError
    from cyto._lock import LockedError

    if isinstance(err, LockedError):
        return EXIT_CODES["busy"], str(err)
    # by name: NonFiniteLossError lives in cyto.nn, whose import would load torch
    if isinstance(err, DegenerateEncodingError) or type(err).__name__ == "NonFiniteLossError":
        return EXIT_CODES["bad_numbers"], str(err)
    if isinstance(err, PermissionError):
        where = err.filename or "a file"
        return EXIT_CODES["error"], (
            f"permission denied writing or reading {where}; choose a folder you can write "
            "to (or fix its permissions)"
        )
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        where = f" while writing {err.filename}" if err.filename else ""
        detail = f" ({err.strerror})" if err.strerror else ""
        return EXIT_CODES["error"], (
            f"the disk is full{where}{detail}; what was finished is kept: free space and "
            "rerun the same command to resume"
        )
    if isinstance(err, ValueError | TypeError | OSError):
        return EXIT_CODES["error"], str(err)
    return EXIT_CODES["internal"], f"{type(err).__name__}: {err}"


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
    except KeyboardInterrupt:
        print(f"cyto {args.command}: interrupted", file=sys.stderr)
        return EXIT_CODES["interrupted"]
    except Exception as err:
        if args.debug:
            raise
        code, message = _explain(err)
        print(f"cyto {args.command}: error: {message}", file=sys.stderr)
        if code == EXIT_CODES["internal"]:
            print("this is a bug in cyto: rerun with --debug for the traceback", file=sys.stderr)
        return code


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
