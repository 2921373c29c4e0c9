"""The options every ``cyto`` command spells the same way, and the help formatter.

One dialect: ``-q/--quiet`` hides progress bars and messages everywhere; ``-j/--workers N``
is always the number of worker processes that read or make data for the command;
``--preset`` takes the same names (``tiny``, ``small``, ``paper``) in ``train``, ``demo``
and ``ablate``. Older spellings (``--no-progress``, ``--jobs``, ``--num-workers``,
``--preset gpu``) are still accepted but no longer shown.
"""

from __future__ import annotations

import argparse

__all__ = [
    "PRESETS",
    "HelpFormatter",
    "add_allow_degenerate",
    "add_overwrite",
    "add_preset",
    "add_quiet",
    "add_workers",
]

#: Preset names shared by ``cyto train``, ``cyto demo`` and ``cyto ablate``.
PRESETS = ("tiny", "small", "paper")
_PRESET_HELP = (
    "tiny: a smoke test (about a minute on 2 CPU cores); small: the CPU default; "
    "paper: the published model (for a GPU)"
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions and examples as written; adds "(default: X)" to every option
    with a default that its help does not already state."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and default not in (None, False, argparse.SUPPRESS)
            and "default" not in text.lower()
            and not isinstance(action, argparse._VersionAction)
        ):
            text += " (default: %(default)s)"
        return text


def add_quiet(p: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` (and the hidden older ``--no-progress``), dest ``quiet``."""
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or messages")
    p.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)


def add_workers(p: argparse.ArgumentParser, what: str, default: int | None, *old: str) -> None:
    """``-j/--workers N``: worker processes for ``what`` (older spellings hidden)."""
    p.add_argument("-j", "--workers", type=int, default=default, metavar="N", help=what)
    for flag in old:
        p.add_argument(flag, dest="workers", type=int, help=argparse.SUPPRESS)


def add_preset(p: argparse.ArgumentParser, default: str | None, extra: str = "") -> None:
    """``--preset {tiny,small,paper}`` (the older ``gpu`` is accepted as ``paper``)."""
    p.add_argument(
        "--preset",
        default=default,
        type=lambda s: "paper" if s == "gpu" else s,
        choices=PRESETS,
        help=_PRESET_HELP + extra,
    )


def add_overwrite(p: argparse.ArgumentParser, what: str) -> None:
    """``--overwrite``: replace an existing output of the same kind that cyto wrote."""
    p.add_argument(
        "--overwrite",
        action="store_true",
        help=f"replace an existing {what} that cyto wrote earlier (never an input, a crop "
        "store, a checkpoint or a file cyto did not write)",
    )


def add_allow_degenerate(p: argparse.ArgumentParser, what: str) -> None:
    """``--allow-degenerate``: go on with encodings in which every crop is alike."""
    p.add_argument(
        "--allow-degenerate",
        action="store_true",
        help=f"{what} even degenerate encodings (every crop alike); by default that stops "
        "with exit code 3",
    )
