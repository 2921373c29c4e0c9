"""One dialect across the CLI: walk every subcommand's --help (cyto <command> --help)."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from cyto.cli import _COMMANDS, get_parser, main


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = get_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _help(name: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    return out.getvalue()


def _options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in p._actions
        if a.option_strings and a.help != argparse.SUPPRESS and a.dest != "help"
    ]


@pytest.mark.parametrize("name", _COMMANDS)
def test_every_help_has_an_example_defaults_and_no_jargon(name: str) -> None:
    text = _help(name)
    p = _subparsers()[name]
    assert "example" in (p.epilog or "") and f"cyto {name}" in p.epilog, (
        f"`cyto {name} --help` shows no example"
    )
    assert f"cyto {name}" in text.split("example")[-1]
    for a in _options(p):
        flag = "/".join(a.option_strings)
        assert a.help, f"cyto {name} {flag} has no help"
        if a.default not in (None, False):
            # the formatted help states the default
            formatted = p.formatter_class("x")._get_help_string(a) or ""
            assert "default" in formatted.lower(), f"cyto {name} {flag}: default not shown"
    for jargon in ("VQ1", "VQ2", "npz with"):
        assert jargon not in text, f"`cyto {name} --help` says {jargon!r} unexplained"
    # one quiet flag everywhere
    quiet = [a for a in p._actions if "--quiet" in a.option_strings]
    assert quiet and quiet[0].option_strings == ["-q", "--quiet"], f"cyto {name}: no -q/--quiet"


def test_one_workers_flag_and_one_preset_vocabulary() -> None:
    subs = _subparsers()
    for name, p in subs.items():
        for a in _options(p):
            assert not {"--jobs", "--num-workers", "--no-progress"} & set(a.option_strings), (
                f"cyto {name} shows an old flag spelling {a.option_strings}"
            )
            if "--workers" in a.option_strings:
                assert a.option_strings == ["-j", "--workers"] and "process" in a.help
    presets = {
        name: next(a.choices for a in subs[name]._actions if "--preset" in a.option_strings)
        for name in ("train", "demo", "ablate")
    }
    assert presets["train"] == presets["demo"] == presets["ablate"] == ("tiny", "small", "paper")
    parser = get_parser()
    for argv in (["demo", "--preset", "paper"], ["ablate", "--preset", "paper"]):
        assert parser.parse_args(argv).preset == "paper"
    # older spellings still parse, to the new destinations
    assert parser.parse_args(["demo", "--preset", "gpu"]).preset == "paper"
    args = parser.parse_args(["synth", "-o", "x", "--jobs", "3", "--no-progress"])
    assert args.workers == 3 and args.quiet
    args = parser.parse_args(["train", "c.h5", "-o", "r", "--num-workers", "2"])
    assert args.workers == 2


def test_top_level_help_lists_every_command() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["--help"])
    for name in _COMMANDS:
        assert name in out.getvalue()
