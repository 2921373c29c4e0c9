"""One guard for every output: every command refuses to write over what it must not.

Walks every command's output option with the things a user can point it at by
mistake — the command's own input, a crop store, a checkpoint, a run's checkpoints
folder, a file or folder of the user's — and checks each is refused (exit 2, one
sentence) and left byte for byte as it was. The refusals come before any work.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bad_inputs import Case, Workspace, _val_embeddings, run_case

pytestmark = pytest.mark.usefixtures("one_thread")


def _digest(path: Path) -> str:
    if path.is_dir():
        return hashlib.sha256(
            "".join(sorted(f"{p}:{_digest(p)}" for p in path.rglob("*") if p.is_file())).encode()
        ).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


# the workspace's tiny model has degenerate encodings: past that check, to the guard's
DEGENERATE = ("--allow-degenerate", "--split", "all")

# each command with its output option: argv before the output, whether it is a folder
COMMANDS = {
    "synth": (lambda ws: ["synth", "-q", "--families", "centrosome", "-o"], True),
    "preprocess": (
        lambda ws: [
            "preprocess",
            str(ws.manifest("walk.csv", f"path,protein_id\n{ws.fov()},P0\n")),
            "--crop-size",
            "32",
            "-q",
            "-o",
        ],
        False,
    ),
    "train": (lambda ws: ["train", str(ws.store), "--preset", "tiny", "-q", "-o"], True),
    "embed": (lambda ws: ["embed", str(ws.run), str(ws.store), "-q", "-o"], False),
    "embed --h5ad": (lambda ws: ["embed", str(ws.embeddings), "--h5ad"], False),
    "analyze": (lambda ws: ["analyze", str(ws.embeddings), "-q", *DEGENERATE, "-o"], True),
    "evaluate": (
        lambda ws: [
            "evaluate",
            str(ws.embeddings),
            "--ground-truth",
            str(_gt(ws)),
            *DEGENERATE,
            "-o",
        ],
        True,
    ),
    "explore": (lambda ws: ["explore", str(ws.embeddings), "-q", *DEGENERATE, "-o"], False),
    "demo": (lambda ws: ["demo", "--preset", "tiny", "-q", "-o"], True),
    "ablate": (lambda ws: ["ablate", "--preset", "tiny", "-q", "-o"], True),
}


def _gt(ws: Workspace) -> Path:
    return ws.manifest("walk-gt.csv", "protein_id,family\nP0,er\nP1,er\nP2,golgi\nP3,golgi\n")


def _targets(ws: Workspace, folder: bool) -> dict[str, Path]:
    """What a user may point an output at by mistake."""
    mine = ws.path("users-folder")
    mine.mkdir(exist_ok=True)
    (mine / "config.json").write_text('{"my": "settings"}')
    (mine / "manifest.csv").write_text("path,protein_id\n")
    return {
        "a crop store": ws.store,
        "a checkpoint": ws.run / "checkpoints" / "last.pt",
        "a run": ws.run,
        "a run's checkpoints folder": ws.run / "checkpoints",
        "an embeddings file": _val_embeddings(ws),
        "a user's file": ws.manifest("users-notes.txt", "my notes"),
        "a user's folder": mine,
    }


@pytest.mark.parametrize("command", list(COMMANDS))
def test_no_command_writes_over_what_it_must_not(command, ws) -> None:
    argv, folder = COMMANDS[command]
    for what, target in _targets(ws, folder).items():
        if command == "train" and what == "a run":
            continue  # training into a run folder is --resume's job: refused below
        before = _digest(target)
        full = [*argv(ws), str(target)]
        code, message = run_case(Case(command, what, lambda ws, a=full: a, 2, ""), ws)
        assert code == 2, (command, what, code, message)
        assert str(target) in message, (command, what, message)  # the guard said it
        assert "Traceback" not in message, (command, what)
        assert _digest(target) == before, (command, what)


def test_train_into_a_finished_run_needs_resume(ws) -> None:
    argv = ["train", str(ws.store), "-o", str(ws.run), "-q"]
    code, message = run_case(Case("train", "a run", lambda ws: argv, 2, ""), ws)
    assert code == 2 and "already holds a run; resume it (--resume)" in message


def test_same_kind_is_replaced_only_with_overwrite_and_leaves_no_stale_file(ws) -> None:
    from cyto.cli import main
    from cyto.data import kind_of

    card = ws.path("card")
    base = ["evaluate", str(ws.embeddings), "--ground-truth", str(_gt(ws)), "-q"]
    base += ["--allow-degenerate", "--split", "all", "-o", str(card)]
    assert main(base) == 0 and kind_of(card) == "evaluation card"
    (card / "stale.csv").unlink(missing_ok=True)
    listed = sorted(p.name for p in card.iterdir())
    # an earlier run's file (listed in the marker) must not survive a replacement
    marker = (card / ".cyto-output.json").read_text()
    (card / "old-output.csv").write_text("from an earlier run")
    (card / ".cyto-output.json").write_text(
        marker.replace('"files": [', '"files": ["old-output.csv", ')
    )
    (card / "my-notes.txt").write_text("the user's own file in the folder")
    assert main(base) == 2  # exists: --overwrite needed
    assert (card / "old-output.csv").exists()
    assert main([*base, "--overwrite"]) == 0
    assert not (card / "old-output.csv").exists()  # no stale file of the earlier run
    assert (card / "my-notes.txt").read_text() == "the user's own file in the folder"
    assert sorted(p.name for p in card.iterdir()) == sorted([*listed, "my-notes.txt"])


def test_explorer_and_h5ad_are_replaced_only_with_overwrite(ws) -> None:
    from cyto.cli import main
    from cyto.data import kind_of

    page = ws.path("atlas.html")
    argv = ["explore", str(ws.embeddings), "-q", "--allow-degenerate", "--max-thumbnails", "8"]
    assert main([*argv, "-o", str(page)]) == 0 and kind_of(page) == "explorer page"
    assert main([*argv, "-o", str(page)]) == 2
    assert main([*argv, "-o", str(page), "--overwrite"]) == 0
    h5ad = ws.path("atlas.h5ad")
    assert main(["embed", str(ws.embeddings), "--h5ad", str(h5ad)]) == 0
    assert kind_of(h5ad) == "AnnData file"
    assert main(["embed", str(ws.embeddings), "--h5ad", str(h5ad)]) == 2
    assert main(["embed", str(ws.embeddings), "--h5ad", str(h5ad), "--overwrite"]) == 0
    # --overwrite never replaces what cyto did not write
    theirs = ws.manifest("theirs.html", "<p>their page</p>")
    assert main([*argv, "-o", str(theirs), "--overwrite"]) == 2
    assert theirs.read_text() == "<p>their page</p>"


def test_a_refused_folder_output_leaves_nothing_behind(tmp_path) -> None:
    from cyto.data import output_folder

    target = tmp_path / "new-card"
    with pytest.raises(RuntimeError), output_folder(target, "evaluation card"):
        (target / "half.json").write_text("{}")
        raise RuntimeError("failed half-way")
    assert not target.exists()


def test_the_guard_compares_files_not_spellings(tmp_path) -> None:
    from cyto.data import check_output

    data = tmp_path / "data.csv"
    data.write_text("a\n")
    os.symlink(data, tmp_path / "link.csv")
    for spelling in (tmp_path / "link.csv", tmp_path / "sub" / ".." / "data.csv"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(FileExistsError, match="is the table; writing there would destroy"):
            check_output(spelling, "explorer page", inputs=[("the table", data)])


def test_a_checkpoint_never_makes_cyto_import_code(ws, tmp_path) -> None:
    """A run folder carrying a .py module that its config names, run from inside it."""
    import shutil

    from cyto.nn import load_checkpoint, save_checkpoint

    run = tmp_path / "shipped-run"
    shutil.copytree(ws.run, run)
    (run / "evilplug.py").write_text(
        "import pathlib\npathlib.Path('RAN').write_text('code ran')\n"
        "def factory(**kw):\n    raise SystemExit('factory called')\n"
    )
    for ckpt in (run / "checkpoints").glob("*.pt"):
        state = load_checkpoint(ckpt)
        state["model_config"]["encoder"] = "evilplug:factory"
        save_checkpoint(state, ckpt)
    out = tmp_path / "e.h5"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-m", "cyto", "embed", ".", str(ws.store), "-o", str(out), "-q"],
        cwd=run, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "never imports code it names" in proc.stderr
    assert not (run / "RAN").exists() and not out.exists()
    from cyto.nn import load_model

    with pytest.raises(ValueError, match="trust_plugins=True"):
        load_model(run)
    assert not (run / "RAN").exists()


def test_refused_commands_leave_nothing_behind(ws) -> None:
    """Every refused case of the bad-inputs table (exit 2 or 3) whose output did not
    exist before leaves no output, no shards folder and no lock file."""
    import contextlib
    import io

    from bad_inputs import CASES

    from cyto.cli import main

    checked = 0
    for case in CASES:
        if case.code not in (2, 3):
            continue
        argv = case.argv(ws)
        if argv[0] == "__locked__" or "-o" not in argv[:-1]:
            continue
        out = Path(argv[argv.index("-o") + 1])
        if out.exists() or not out.parent.is_dir():
            continue
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exit_:
                code = int(exit_.code or 0)
        assert code == case.code, (case.what, code)
        left = [p for p in (out, Path(f"{out}.parts"), out.parent / f".{out.name}.lock")]
        assert not any(p.exists() for p in left), (case.what, [p for p in left if p.exists()])
        checked += 1
    assert checked >= 30
