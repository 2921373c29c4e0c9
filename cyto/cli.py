"""The ``cyto`` command line: a thin layer over library functions.

Each subcommand lives in ``cyto/_commands/<name>.py`` and exposes
``add_parser(subparsers) -> argparse.ArgumentParser``; the parser sets
``func`` to a callable taking the parsed namespace and returning an exit code.
Command modules import their heavy dependencies inside ``func`` so that
``cyto --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from cyto import __version__

__all__ = ["get_parser", "main"]

# Order shown in `cyto --help`.
_COMMANDS: tuple[str, ...] = (
    "synth",
    "preprocess",
    "train",
    "embed",
    "analyze",
    "evaluate",
    "explore",
    "demo",
    "ablate",
)


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
    from cyto._commands._common import HelpFormatter

    for name in _COMMANDS:
        module = importlib.import_module(f"cyto._commands.{name}")
        module.add_parser(subparsers).formatter_class = HelpFormatter
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


# how to pick up where a command stopped, when it is not "rerun the same command"
_RESUME = {"train": "rerun it with --resume RUN to resume"}

# OSErrors whose raw text ("[Errno 21] Is a directory: 'x'") says too little
_OS_SENTENCES = {
    errno.EISDIR: "{name} is a folder where a file was expected; name a file",
    errno.ENOTDIR: "{name}: a part of this path is a file, not a folder",
    errno.EEXIST: "{name} exists already; choose another name",
    errno.ENOENT: "{name} not found",
    errno.ENAMETOOLONG: "{name}: the file name is too long",
}


def _explain(err: BaseException, command: str = "") -> tuple[int, str]:
    """Exit code and one sentence for an exception that reached the command line."""

    from cyto._atomic import io_failure
    from cyto._health import DegenerateEncodingError
    from cyto._lock import LockedError
    from cyto._optional import MissingExtraError

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
    if isinstance(err, MissingExtraError):
        return EXIT_CODES["error"], str(err)
    failure = io_failure(err)
    if failure == "disk_full":
        name = getattr(err, "filename", None)
        where = f" while writing {name}" if name else ""
        strerror = getattr(err, "strerror", None) if getattr(err, "errno", None) else None
        detail = f" ({strerror})" if strerror else ""
        return EXIT_CODES["error"], (
            f"the disk is full{where}{detail}; what was finished is kept: free space and "
            f"{_RESUME.get(command, 'rerun the same command to resume')}"
        )
    if failure == "read_only":
        name = getattr(err, "filename", None)
        return EXIT_CODES["error"], (
            f"cannot write {name or 'the output'}: the folder is on a read-only file system; "
            "choose a folder you can write to"
        )
    if isinstance(err, OSError) and err.errno in _OS_SENTENCES and err.filename:
        return EXIT_CODES["error"], _OS_SENTENCES[err.errno].format(name=err.filename)
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
    if not args.debug:
        sys.unraisablehook = _quiet_h5py_cleanup(sys.unraisablehook)
    received: list[int] = []
    try:
        with warnings.catch_warnings(), _interrupts_raise(received):
            warnings.showwarning = _show_warning(args.command)
            code = int(args.func(args) or 0)
        if received:  # the interrupt landed where it was swallowed (a finaliser, a callback)
            raise KeyboardInterrupt
        return code
    except KeyboardInterrupt:
        print(f"cyto {args.command}: interrupted; finished work is kept", file=sys.stderr)
        return EXIT_CODES["interrupted"]
    except Exception as err:
        if args.debug:
            raise
        code, message = _explain(err, args.command)
        from cyto._atomic import io_failure

        if io_failure(err):
            _IO_FAILED.append(str(io_failure(err)))
        print(f"cyto {args.command}: error: {message}", file=sys.stderr)
        if code == EXIT_CODES["internal"]:
            print("this is a bug in cyto: rerun with --debug for the traceback", file=sys.stderr)
        return code


@contextlib.contextmanager
def _interrupts_raise(received: list[int]) -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt and are remembered in ``received``.

    Remembered, so that an interrupt that Python reports as "Exception ignored" (it
    arrived inside a finaliser or a callback) still ends the command with exit code 130
    instead of 0; SIGTERM (a job scheduler's stop) is treated like Ctrl-C. Outside the
    main thread (cyto.cli.main called from a thread) nothing is changed.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    before = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in before.items():
            signal.signal(sig, old)


def entry() -> None:
    """Console entry point (``cyto`` and ``python -m cyto``): :func:`main`, then exit.

    After a full disk or a read-only folder the process ends at once, skipping the
    interpreter's teardown: HDF5 would otherwise report the failed write again for each
    object it frees (and may crash doing so), after the one sentence already printed.
    Every output is complete or absent by then (atomic writes, locks released).

    Once :func:`main` has returned, the outcome is decided: SIGINT and SIGTERM are
    ignored for the rest of the teardown (one landing there would otherwise kill the
    process with the signal, neither 0 nor 130, and say nothing).
    """
    import os
    import signal

    code = main()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    if _IO_FAILED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


_IO_FAILED: list[str] = []  # set by main() when a command failed on a full or read-only disk


def _quiet_h5py_cleanup(default: Callable[[Any], None]) -> Callable[[Any], None]:
    """An unraisable-exception hook that drops h5py's reports while freeing its objects,
    and interrupts that landed in a finaliser (the command reports them once, exit 130).

    After a failed write (full disk, read-only folder) h5py cannot close the file it
    was writing and reports that again as each of its objects is garbage-collected;
    the error itself has been reported in one sentence already. This drops the
    ``Exception ignored in ...`` reports that go through the hook (``--debug`` keeps
    them); Cython prints some tracebacks itself, before the hook: :func:`entry` avoids
    those at exit, and the free-space checks before writing avoid most of the rest.
    """

    def hook(unraisable: Any) -> None:
        where = f"{unraisable.object!r} {unraisable.err_msg or ''}"
        if "h5py" in where:
            return
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            return  # an interrupt that landed in a finaliser: main() reports it (exit 130)
        default(unraisable)

    return hook


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
