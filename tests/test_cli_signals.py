"""Interrupts: SIGINT and SIGTERM end every command with exit code 130, also when the
interrupt lands where Python can only report it ("Exception ignored ...")."""

from __future__ import annotations

import os
import signal
import time

import pytest

from cyto import cli
from cyto._commands import synth


def _fake_command(monkeypatch, body) -> None:
    monkeypatch.setattr(synth, "_run", body)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_exits_130(monkeypatch, capsys, sig) -> None:
    def body(args):
        os.kill(os.getpid(), sig)
        time.sleep(5)  # interrupted long before
        return 0

    _fake_command(monkeypatch, body)
    assert cli.main(["synth", "-o", "x"]) == 130
    assert "interrupted; finished work is kept" in capsys.readouterr().err


def test_a_swallowed_interrupt_still_exits_130(monkeypatch, capsys) -> None:
    """The interrupt arrives inside code that catches it (a finaliser, a callback):
    the command goes on to its end, and still does not report success."""

    def body(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except KeyboardInterrupt:
            pass  # as h5py's or a pool's cleanup does
        return 0

    _fake_command(monkeypatch, body)
    assert cli.main(["synth", "-o", "x"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_the_handlers_are_restored(monkeypatch) -> None:
    before = signal.getsignal(signal.SIGTERM)
    _fake_command(monkeypatch, lambda args: 0)
    assert cli.main(["synth", "-o", "x"]) == 0
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_full_disk_during_training_says_to_resume() -> None:
    import errno

    code, message = cli._explain(OSError(errno.ENOSPC, "No space left on device"), "train")
    assert code == 2 and "--resume" in message
    code, message = cli._explain(OSError(errno.ENOSPC, "No space left on device"), "embed")
    assert "rerun the same command" in message


@pytest.mark.parametrize(
    ("err", "says"),
    [
        (IsADirectoryError(21, "Is a directory", "out"), "out is a folder where a file"),
        (NotADirectoryError(20, "Not a directory", "a/b"), "a part of this path is a file"),
        (FileExistsError(17, "File exists", "x"), "x exists already"),
    ],
)
def test_raw_errno_texts_become_sentences(err, says) -> None:
    code, message = cli._explain(err, "embed")
    assert code == 2 and says in message and "Errno" not in message
