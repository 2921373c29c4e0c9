"""Bad inputs tried on the ``cyto`` command line, and what the user is told.

One list of cases, used twice: ``tests/test_bad_inputs.py`` runs every case and checks
its exit code and message; ``python tools/bad_inputs.py`` runs them and writes
``docs/bad_inputs.md`` (the table a user can search for the message they got), so the
table stays true. Each case builds its inputs in a scratch folder, runs ``cyto`` in this
process (``cyto.cli.main``) and records the exit code and the first line of stderr.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

__all__ = ["CASES", "Case", "Workspace", "hold", "run_case"]


class Workspace:
    """Inputs shared by the cases, built on first use in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, name: str) -> Path:
        return self.root / name

    @cached_property
    def store(self) -> Path:
        """A 32-crop, 4-protein store (a band per protein), 32×32."""
        from cyto.data import write_crop_store

        rng = np.random.default_rng(0)
        prot = np.repeat([f"P{k}" for k in range(4)], 8)
        fov = np.array([f"{p}-f{i % 8}" for i, p in enumerate(prot)])
        crops = rng.normal(0, 0.3, size=(32, 2, 32, 32)).astype(np.float32)
        for k in range(4):
            crops[prot == f"P{k}", 0, 8 * k : 8 * (k + 1)] += 2.0
        return write_crop_store(self.path("crops.h5"), crops.astype(np.float16), prot, fov_ids=fov)

    @cached_property
    def run(self) -> Path:
        """A tiny run of 4 steps (its encodings are degenerate)."""
        import warnings

        from cyto.nn import TrainConfig, train

        cfg = TrainConfig(preset="tiny", batch_size=8, max_epochs=1, num_workers=0, progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return train(self.store, self.path("run"), config=cfg)

    @cached_property
    def embeddings(self) -> Path:
        from cyto.nn import embed

        return embed(
            self.run, self.store, self.path("emb.h5"), progress=False, allow_degenerate=True
        )

    def fov(self, name: str = "field.tif", *, dark: bool = False) -> Path:
        """A two-channel field with nine nuclei (or none)."""
        import tifffile

        img = np.full((2, 1, 200, 200), 200, np.uint16)
        if not dark:
            yy, xx = np.mgrid[:200, :200]
            for cy in (40, 100, 160):
                for cx in (40, 100, 160):
                    disk = (yy - cy) ** 2 + (xx - cx) ** 2 < 12**2
                    img[:, 0][:, disk] = 3000
        path = self.path(name)
        tifffile.imwrite(path, img, photometric="minisblack")
        return path

    def manifest(self, name: str, text: str | bytes) -> Path:
        path = self.path(name)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, the command, and what must come back."""

    command: str
    what: str
    argv: Callable[[Workspace], list[str]]
    code: int
    message: str  # a part of the message the user must see


HOLD = """
import sys, time
from cyto._lock import write_lock
with write_lock(sys.argv[1], what="output"):
    print("locked", flush=True)
    time.sleep(120)
"""


def hold(target: Path) -> subprocess.Popen:
    """A separate process holding the writer lock of ``target`` (the caller kills it)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE, text=True
    )
    if proc.stdout.readline().strip() != "locked":
        proc.kill()
        raise RuntimeError(f"the lock holder for {target} did not start")
    return proc


@contextlib.contextmanager
def _held(target: Path):
    proc = hold(target)
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def _huge_tiff(ws: Workspace) -> Path:
    """A TIFF whose header claims a 60000×60000 image (the file holds 8×8 pixels)."""
    import struct

    import tifffile

    path = ws.path("huge.tif")
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16))
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        for tag in tif.pages[0].tags.values():
            if tag.code in (256, 257):  # ImageWidth, ImageLength
                fmt = "<H" if tag.dtype == 3 else "<I"
                data[tag.valueoffset : tag.valueoffset + struct.calcsize(fmt)] = struct.pack(
                    fmt, 60000
                )
    path.write_bytes(bytes(data))
    return path


def _nan_store(ws: Workspace) -> Path:
    from cyto.data import CropStore, write_crop_store

    with CropStore(ws.store) as s:
        crops = s.read(slice(None))
        pids, fovs = s.protein_ids, s.fov_ids
    crops[3] = np.nan
    return write_crop_store(ws.path("nan.h5"), crops.astype(np.float16), pids, fov_ids=fovs)


def _nan_checkpoint(ws: Workspace) -> Path:
    import torch

    from cyto.nn import load_checkpoint, save_checkpoint

    state = load_checkpoint(ws.run / "checkpoints" / "last.pt")
    key = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][key] = torch.full_like(state["model"][key], float("nan"))
    save_checkpoint(state, ws.path("nan.pt"))
    return ws.path("nan.pt")


def _other_store(ws: Workspace) -> Path:
    from cyto.data import CropStore, write_crop_store

    with CropStore(ws.store) as s:
        crops = s.read(slice(None)) * 0.1
        pids, fovs = s.protein_ids, s.fov_ids
    return write_crop_store(ws.path("other.h5"), crops.astype(np.float16), pids, fov_ids=fovs)


def _one_field_run(ws: Workspace) -> Path:
    """A run whose proteins have one or two fields each: no test split."""
    import warnings

    from cyto.data import CropStore, write_crop_store
    from cyto.nn import TrainConfig, train

    with CropStore(ws.store) as s:
        crops, pids = s.read(slice(None)), s.protein_ids.astype(str)
    fovs = np.array([f"{p}-{i % 2}" for i, p in enumerate(pids)])
    store = write_crop_store(ws.path("few.h5"), crops.astype(np.float16), pids, fov_ids=fovs)
    cfg = TrainConfig(preset="tiny", batch_size=8, max_epochs=1, num_workers=0, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(store, ws.path("few-run"), config=cfg)
    return store


def _plugin_run(ws: Workspace) -> Path:
    """A copy of the run whose checkpoints name the plug-in encoder 'this:nothing'
    (importing the module ``this`` prints the Zen of Python)."""
    import shutil

    from cyto.nn import load_checkpoint, save_checkpoint

    run = ws.path("plugin-run")
    if not run.exists():
        shutil.copytree(ws.run, run)
        for ckpt in (run / "checkpoints").glob("*.pt"):
            state = load_checkpoint(ckpt)
            state["model_config"]["encoder"] = "this:nothing"
            save_checkpoint(state, ckpt)
    return run


def _val_embeddings(ws: Workspace) -> Path:
    """Embeddings of the validation split only (no test crops)."""
    from cyto.nn import embed

    out = ws.path("emb-val.h5")
    if not out.exists():
        embed(ws.run, ws.store, out, split="val", progress=False, allow_degenerate=True)
    return out


def _cyto_file(ws: Workspace, name: str, kind: str) -> Path:
    """An earlier output of ``kind`` cyto wrote (a copy of the workspace's)."""
    import shutil

    path = ws.path(name)
    if not path.exists():
        if kind == "embeddings":
            shutil.copy(ws.embeddings, path)
        else:
            from cyto.data import export_h5ad

            export_h5ad(ws.embeddings, path)
    return path


def _user_folder(ws: Workspace, name: str, files: dict[str, str]) -> Path:
    """A folder of the user's own files (e.g. a config.json that is not a run's)."""
    folder = ws.path(name)
    folder.mkdir(exist_ok=True)
    for rel, text in files.items():
        (folder / rel).write_text(text)
    return folder


def _flat_image(ws: Workspace, name: str, kind: str) -> Path:
    """A file starting like a PNG or JPEG image (what a flat export writes)."""
    head = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff\xe0"}[kind]
    path = ws.path(name)
    path.write_bytes(head + bytes(64))
    return path


def _explore(ws: Workspace, *extra: str, emb: Path | None = None) -> list[str]:
    return ["explore", str(emb or ws.embeddings), "-q", "--allow-degenerate", *extra]


def _evaluate(ws: Workspace, *extra: str, gt: str | None = None) -> list[str]:
    table = ws.manifest("gt4.csv", "protein_id,family\nP0,er\nP1,er\nP2,golgi\nP3,golgi\n")
    return ["evaluate", str(ws.embeddings), "-q", "--allow-degenerate",
            "--ground-truth", str(gt or table), *extra]  # fmt: skip


def _damaged_run(ws: Workspace) -> Path:
    """A copy of the run whose config.json holds bytes that are not UTF-8."""
    import shutil

    run = ws.path("damaged-run")
    if not run.exists():
        shutil.copytree(ws.run, run)
        (run / "config.json").write_bytes(b"\xff\xfe garbage")
    return run


def _truncated(ws: Workspace) -> Path:
    data = ws.store.read_bytes()
    path = ws.path("trunc.h5")
    path.write_bytes(data[: len(data) // 2])
    return path


def _other_size(ws: Workspace) -> Path:
    from cyto.data import write_crop_store

    crops = np.random.default_rng(0).random((8, 2, 48, 48)).astype(np.float16)
    return write_crop_store(ws.path("big48.h5"), crops, np.repeat(["P0", "P1"], 4))


def _preprocess(ws: Workspace, manifest: Path, out: str = "out.h5") -> list[str]:
    return ["preprocess", str(manifest), "-o", str(ws.path(out)), "--crop-size", "32", "-q"]


def _foreign(ws: Workspace) -> list[str]:
    a = ws.manifest("a.csv", f"path,protein_id,fov_id\n{ws.fov('a.tif')},P0,f1\n")
    from cyto.cli import main

    main(_preprocess(ws, a, "ab.h5"))
    img = ws.fov("b.tif")
    data = img.read_bytes()
    img.write_bytes(data[:-4] + b"\x01\x02\x03\x04")  # other pixels, same fov id
    b = ws.manifest("b.csv", f"path,protein_id,fov_id\n{img},P0,f1\n")
    return _preprocess(ws, b, "ab.h5")


def _masked(ws: Workspace, name: str, mask: np.ndarray) -> list[str]:
    import tifffile

    tifffile.imwrite(ws.path(f"{name}.tif"), mask)
    text = f"path,protein_id,mask_path\n{ws.fov()},P0,{ws.path(name + '.tif')}\n"
    return _preprocess(ws, ws.manifest(f"{name}.csv", text), f"{name}.h5")


def _locked(ws: Workspace, target: Path, argv: list[str]) -> list[str]:
    return ["__locked__", str(target), *argv]


CASES: list[Case] = [
    # ------------------------------------------------------------------ preprocess
    Case("preprocess", "manifest that does not exist",
         lambda ws: _preprocess(ws, ws.path("nope.csv")), 2, "not found"),
    Case("preprocess", "manifest with a header and no rows",
         lambda ws: _preprocess(ws, ws.manifest("e.csv", "path,protein_id\n")), 2,
         "lists no field of view"),
    Case("preprocess", "manifest that is not UTF-8 (Latin-1)",
         lambda ws: _preprocess(ws, ws.manifest("l.csv", "path,protein_id\nf\xe9.tif,P0\n".encode("latin-1"))),
         2, "not UTF-8 text"),
    Case("preprocess", "manifest with an unclosed quote",
         lambda ws: _preprocess(ws, ws.manifest("q.csv", 'path,protein_id\n"f.tif,P0\n')), 2,
         "unclosed quote"),
    Case("preprocess", "manifest without a protein_id column",
         lambda ws: _preprocess(ws, ws.manifest("c.csv", "path\nf.tif\n")), 2,
         "manifest lacks column(s) ['protein_id']"),
    Case("preprocess", "the same image listed twice",
         lambda ws: _preprocess(ws, ws.manifest("d.csv", f"path,protein_id,fov_id\n{ws.fov()},P0,a\n{ws.fov()},P0,b\n")),
         2, "same image more than once"),
    Case("preprocess", "another dataset's fields into an existing store (same fov ids)",
         _foreign, 2, "made from other inputs"),
    Case("preprocess", "a TIFF whose header claims 60000×60000 pixels (only field)",
         lambda ws: _preprocess(ws, ws.manifest("h.csv", f"path,protein_id\n{_huge_tiff(ws)},P0\n")),
         1, "damaged or truncated"),
    Case("preprocess", "a nucleus mask of another size than its image (only field)",
         lambda ws: _masked(ws, "small_mask", np.zeros((150, 200), np.uint16)), 1,
         "a mask must label the field it belongs to"),
    Case("preprocess", "a floating-point nucleus mask (a probability map; only field)",
         lambda ws: _masked(ws, "float_mask", np.zeros((200, 200), np.float32)), 1,
         "a mask must hold integer labels"),
    Case("preprocess", "--masks naming a folder that does not exist",
         lambda ws: [*_preprocess(ws, ws.manifest("m.csv", f"path,protein_id\n{ws.fov()},P0\n")), "--masks", str(ws.path("no_masks"))],
         2, "`masks` folder not found"),
    Case("preprocess", "--segmenter that is neither registered nor importable",
         lambda ws: [*_preprocess(ws, ws.manifest("s.csv", f"path,protein_id\n{ws.fov()},P0\n")), "--segmenter", "cellpose"],
         2, "unknown segmenter 'cellpose'"),
    Case("preprocess", "a field without nuclei (only field)",
         lambda ws: _preprocess(ws, ws.manifest("k.csv", f"path,protein_id\n{ws.fov('dark.tif', dark=True)},P0\n")),
         1, "no crops were made"),
    Case("preprocess", "an image file that is missing (only field)",
         lambda ws: _preprocess(ws, ws.manifest("m.csv", "path,protein_id\ngone.tif,P0\n")), 1,
         "image file not found"),
    Case("preprocess", "--crop-size 0",
         lambda ws: [*_preprocess(ws, ws.manifest("z.csv", f"path,protein_id\n{ws.fov()},P0\n"))[:-3], "--crop-size", "0"],
         2, "crop_size"),
    Case("preprocess", "a store another process is writing",
         lambda ws: _locked(ws, ws.path("busy.h5"), _preprocess(ws, ws.manifest("y.csv", f"path,protein_id\n{ws.fov()},P0\n"), "busy.h5")),
         4, "is being written by pid"),
    Case("preprocess", "output folder that does not exist",
         lambda ws: ["preprocess", str(ws.manifest("o.csv", f"path,protein_id\n{ws.fov()},P0\n")), "-o", str(ws.path("nodir/out.h5"))],
         2, "folder of `out` does not exist"),
    Case("preprocess", "--downsample 0",
         lambda ws: [*_preprocess(ws, ws.manifest("ds.csv", f"path,protein_id\n{ws.fov()},P0\n")), "--downsample", "0"],
         2, "downsample_factor"),
    Case("preprocess", "protein and nucleus the same channel of one file",
         lambda ws: _preprocess(ws, ws.manifest("pc.csv", f"path,protein_id,protein_channel,nucleus_channel\n{ws.fov()},P0,0,0\n")),
         2, "protein_channel and nucleus_channel are both 0"),
    Case("preprocess", "a channel column that is not a number",
         lambda ws: _preprocess(ws, ws.manifest("nc.csv", f"path,protein_id,protein_channel\n{ws.fov()},P0,green\n")),
         2, "column 'protein_channel' must be an integer, got 'green'"),
    Case("preprocess", "a row with an empty protein_id",
         lambda ws: _preprocess(ws, ws.manifest("ep.csv", f"path,protein_id\n{ws.fov()},\n")),
         2, "empty path or protein_id"),
    Case("preprocess", "a file that is not a TIFF (only field)",
         lambda ws: _preprocess(ws, ws.manifest("nt.csv", f"path,protein_id\n{ws.manifest('fake.tif', 'not an image')},P0\n")),
         1, "cannot read as TIFF"),
    # ------------------------------------------------------------------ train
    Case("train", "a crop store that is not HDF5",
         lambda ws: ["train", str(ws.manifest("text.h5", "hello")), "-o", str(ws.path("r6"))], 2,
         "not a readable HDF5"),
    Case("train", "a truncated crop store",
         lambda ws: ["train", str(_truncated(ws)), "-o", str(ws.path("r7"))], 2,
         "crop store"),
    Case("train", "a store with NaN pixels in a validation crop",
         lambda ws: ["train", str(_nan_store(ws)), "-o", str(ws.path("r8")), "--preset", "tiny", "--batch-size", "8", "--no-progress"], 2,
         "holds non-finite pixels (1 crop of a validation batch)"),
    Case("train", "--batch-size 0",
         lambda ws: ["train", str(ws.store), "-o", str(ws.path("r9")), "--batch-size", "0"], 2,
         "`batch_size` must be an int >= 1"),
    Case("train", "--lr -1",
         lambda ws: ["train", str(ws.store), "-o", str(ws.path("r10")), "--lr", "-1"], 2,
         "`lr` must be a finite number >= 0"),
    Case("train", "--device tpu",
         lambda ws: ["train", str(ws.store), "-o", str(ws.path("r11")), "--preset", "tiny", "--batch-size", "8", "--device", "tpu", "--no-progress"],
         2, "device"),
    Case("train", "--codebook kmeans (not a choice)",
         lambda ws: ["train", str(ws.store), "-o", str(ws.path("r12")), "--codebook", "kmeans"], 2,
         "invalid choice: 'kmeans'"),
    Case("train", "-o names an existing file",
         lambda ws: ["train", str(ws.store), "-o", str(ws.manifest("notes.txt", "x"))], 2,
         "is a file; a run is a folder"),
    Case("train", "crop store that does not exist",
         lambda ws: ["train", str(ws.path("gone.h5")), "-o", str(ws.path("r1"))], 2,
         "crop store not found"),
    Case("train", "--resume of a folder that does not exist",
         lambda ws: ["train", "--resume", str(ws.path("never"))], 2, "no run to resume"),
    Case("train", "--resume with another store of the same shape",
         lambda ws: ["train", str(_other_store(ws)), "--resume", str(ws.run), "--max-epochs", "2"],
         2, "not the store the run was trained on"),
    Case("train", "unknown preset",
         lambda ws: ["train", str(ws.store), "-o", str(ws.path("r2")), "--preset", "huge", "--batch-size", "8"], 2,
         "argument --preset: invalid choice: 'huge'"),
    Case("train", "--monitor names no metric",
         lambda ws: ["train", str(ws.store), "-o", str(ws.path("r3")), "--preset", "tiny",
                     "--monitor", "speed", "--max-epochs", "1", "--batch-size", "8", "--no-progress"], 2,
         "`monitor` 'speed' is not a metric"),
    Case("train", "a run folder another process is training into",
         lambda ws: _locked(ws, ws.path("busyrun"), ["train", str(ws.store), "-o", str(ws.path("busyrun")), "--preset", "tiny"]),
         4, "is being written by pid"),
    # ------------------------------------------------------------------ embed
    Case("embed", "-o is the crop store being encoded",
         lambda ws: ["embed", str(ws.run), str(ws.store), "-o", str(ws.store), "--no-progress"], 2,
         "writing there would destroy it"),
    Case("embed", "-o is a checkpoint",
         lambda ws: ["embed", str(ws.run), str(ws.store), "-o", str(ws.run / "checkpoints" / "last.pt"), "--no-progress"],
         2, "the checkpoint"),
    Case("embed", "-o is an existing file of another kind",
         lambda ws: ["embed", str(ws.run), str(ws.store), "-o", str(ws.manifest("keep.csv", "a,b\n")), "--no-progress"],
         2, "that cyto did not write"),
    Case("embed", "a run whose encodings collapsed",
         lambda ws: ["embed", str(ws.run), str(ws.store), "-o", str(ws.path("e1.h5")), "--no-progress"],
         3, "are degenerate"),
    Case("embed", "--split test of a run whose test split is empty",
         lambda ws: ["embed", str(ws.path("few-run")), str(_one_field_run(ws)), "-o", str(ws.path("e2.h5")),
                     "--split", "test", "--no-progress"],
         2, "'test' split is empty"),
    Case("embed", "a store with NaN pixels",
         lambda ws: ["embed", str(ws.run), str(_nan_store(ws)), "-o", str(ws.path("e3.h5")), "--no-progress"],
         2, "holds non-finite pixels (crops [3])"),
    Case("embed", "a checkpoint with NaN weights",
         lambda ws: ["embed", str(ws.run), str(ws.store), "-o", str(ws.path("e4.h5")), "--checkpoint",
                     str(_nan_checkpoint(ws)), "--no-progress"],
         2, "holds non-finite weights"),
    Case("embed", "a checkpoint file given as the run",
         lambda ws: ["embed", str(ws.run / "checkpoints" / "last.pt"), str(ws.store), "-o", str(ws.path("e5.h5"))],
         2, "give the run folder"),
    Case("embed", "an embeddings file another process is writing",
         lambda ws: _locked(ws, ws.path("e6.h5"), ["embed", str(ws.run), str(ws.store), "-o", str(ws.path("e6.h5"))]),
         4, "is being written by pid"),
    Case("embed", "a run folder that does not exist",
         lambda ws: ["embed", str(ws.path("norun")), str(ws.store), "-o", str(ws.path("e7.h5"))], 2,
         "run folder not found"),
    Case("embed", "a store of another crop size than the model's",
         lambda ws: ["embed", str(ws.run), str(_other_size(ws)), "-o", str(ws.path("e8.h5")), "--no-progress"],
         2, "the model expects 2 of 32x32"),
    Case("embed", "--batch-size 0",
         lambda ws: ["embed", str(ws.run), str(ws.store), "-o", str(ws.path("e9.h5")), "--batch-size", "0"], 2,
         "`batch_size` must be a positive int"),
    # ------------------------------------------------------------------ analyze
    Case("analyze", "degenerate encodings",
         lambda ws: ["analyze", str(ws.embeddings), "-o", str(ws.path("rep1")), "-q"], 3,
         "are degenerate"),
    Case("analyze", "ground truth that names none of the proteins",
         lambda ws: ["analyze", str(ws.embeddings), "-o", str(ws.path("rep2")), "-q", "--allow-degenerate",
                     "--ground-truth", str(ws.manifest("gt.csv", "protein_id,family\nXYZ,er\nABC,golgi\n"))],
         2, "labels 0 of the 4 proteins"),
    Case("analyze", "embeddings file that does not exist",
         lambda ws: ["analyze", str(ws.path("gone.h5")), "-o", str(ws.path("rep3"))], 2,
         "embeddings file not found"),
    Case("analyze", "a file that is not HDF5",
         lambda ws: ["analyze", str(ws.manifest("notes.h5", "hello")), "-o", str(ws.path("rep4"))], 2,
         "is not a readable HDF5 file"),
    Case("analyze", "--split that the file does not have",
         lambda ws: ["analyze", str(ws.embeddings), "-o", str(ws.path("rep5")), "--split", "holdout", "--allow-degenerate", "-q"],
         2, "`split` 'holdout' not in the embeddings file"),
    Case("analyze", "--seeds 0",
         lambda ws: ["analyze", str(ws.embeddings), "-o", str(ws.path("rep6")), "--seeds", "0"], 2,
         "--seeds must be >= 1"),
    # ------------------------------------------------------------------ synth
    Case("synth", "--proteins below what the families need",
         lambda ws: ["synth", "--proteins", "6", "-o", str(ws.path("s"))], 2,
         "`--proteins` must lie between"),
    # ------------------------------------------------------------------ outputs (one guard)
    Case("preprocess", "-o is the manifest",
         lambda ws: ["preprocess", str(m := ws.manifest("om.csv", f"path,protein_id\n{ws.fov()},P0\n")), "-o", str(m)],
         2, "is the manifest; writing there would destroy it"),
    Case("train", "-o is a folder of the user's files (a config.json that is not a run's)",
         lambda ws: ["train", str(ws.store), "-o", str(_user_folder(ws, "mine", {"config.json": "{}", "notes.txt": "x"}))],
         2, "non-empty folder that cyto did not write"),
    Case("train", "-o is a run's checkpoints/ folder",
         lambda ws: ["train", str(ws.store), "-o", str(ws.run / "checkpoints")], 2,
         "is a run's checkpoints folder, not a run"),
    Case("train", "-o is a synthetic dataset folder",
         lambda ws: ["train", str(ws.store), "-o", str(_user_folder(ws, "synthset", {"synth.json": '{"config": {}}'}))],
         2, "is a synthetic atlas, not a run"),
    Case("embed", "-o is an earlier embeddings file of another split (no --overwrite)",
         lambda ws: ["embed", str(ws.run), str(ws.store), "-o", str(_cyto_file(ws, "old.h5", "embeddings")), "-q", "--split", "test"],
         2, "already holds an embeddings file of another run, checkpoint, store, split"),
    Case("embed", "--h5ad is the crop store being encoded",
         lambda ws: ["embed", str(ws.run), str(ws.store), "-o", str(ws.path("h1.h5")), "--h5ad", str(ws.store), "-q"],
         2, "is the crop store being encoded"),
    Case("embed", "--h5ad is the -o file of the same command",
         lambda ws: ["embed", str(ws.run), str(ws.store), "-o", str(ws.path("h2.h5")), "--h5ad", str(ws.path("h2.h5")), "-q"],
         2, "is the embeddings file this command writes"),
    Case("embed", "--h5ad names an existing .h5ad cyto did not write",
         lambda ws: ["embed", str(ws.embeddings), "--h5ad", str(ws.manifest("theirs.h5ad", "not anndata"))],
         2, "that cyto did not write"),
    Case("embed", "--h5ad names an earlier export (no --overwrite)",
         lambda ws: ["embed", str(ws.embeddings), "--h5ad", str(_cyto_file(ws, "old.h5ad", "h5ad"))],
         2, "already holds an AnnData file; pass --overwrite"),
    Case("embed", "a checkpoint that names the plug-in encoder 'this:nothing'",
         lambda ws: ["embed", str(_plugin_run(ws)), str(ws.store), "-o", str(ws.path("p.h5")), "-q"],
         2, "never imports code it names"),
    Case("explore", "-o is the embeddings file",
         lambda ws: _explore(ws, "-o", str(ws.embeddings)), 2, "writing there would destroy it"),
    Case("explore", "-o is the crop store",
         lambda ws: _explore(ws, "-o", str(ws.store)), 2, "is a crop store, not an explorer page"),
    Case("explore", "-o is the ground-truth table",
         lambda ws: _explore(ws, "-o", str(g := ws.manifest("gtx.csv", "protein_id,family\nP0,er\n")), "--ground-truth", str(g)),
         2, "is the ground truth; writing there would destroy it"),
    Case("explore", "-o is a run's last checkpoint",
         lambda ws: _explore(ws, "-o", str(ws.run / "checkpoints" / "last.pt")), 2,
         "inside a run's checkpoints/ folder"),
    Case("explore", "-o is a file cyto did not write",
         lambda ws: _explore(ws, "-o", str(ws.manifest("notes.html", "<p>my notes</p>"))), 2,
         "that cyto did not write"),
    Case("explore", "degenerate encodings",
         lambda ws: ["explore", str(ws.embeddings), "-o", str(ws.path("x1.html")), "-q"], 3,
         "are degenerate"),
    Case("explore", "--crops from another store than the one embedded",
         lambda ws: _explore(ws, "-o", str(ws.path("x2.html")), "--crops", str(_other_store(ws))), 2,
         "is not the crop store emb.h5 was embedded from"),
    Case("evaluate", "-o is the embeddings file",
         lambda ws: _evaluate(ws, "-o", str(ws.embeddings)), 2, "writing there would destroy it"),
    Case("evaluate", "-o is a folder of the user's files",
         lambda ws: _evaluate(ws, "-o", str(_user_folder(ws, "results", {"evaluation.json": "{}"}))), 2,
         "non-empty folder that cyto did not write"),
    Case("evaluate", "degenerate encodings",
         lambda ws: [a for a in _evaluate(ws, "-o", str(ws.path("c1"))) if a != "--allow-degenerate"], 3,
         "are degenerate"),
    Case("evaluate", "--crops from another store than the one embedded",
         lambda ws: _evaluate(ws, "-o", str(ws.path("c2")), "--crops", str(_other_store(ws))), 2,
         "is not the crop store emb.h5 was embedded from"),
    Case("evaluate", "--split test of a file without test crops",
         lambda ws: ["evaluate", str(_val_embeddings(ws)), "-o", str(ws.path("c3")), "-q", "--allow-degenerate",
                     "--ground-truth", str(ws.manifest("gt5.csv", "protein_id,family\nP0,er\nP1,golgi\n"))],
         2, "`split` 'test' not in the embeddings file emb-val.h5; it has ['val']"),
    Case("evaluate", "a ground truth that labels one protein",
         lambda ws: _evaluate(ws, "-o", str(ws.path("c4")), gt=str(ws.manifest("gt1.csv", "protein_id,family\nP0,er\nXYZ,golgi\n"))),
         2, "labels 1 of the 4 proteins"),
    Case("evaluate", "protein ids that differ from the ground truth's only in case",
         lambda ws: _evaluate(ws, "-o", str(ws.path("c5")), gt=str(ws.manifest("gtc.csv", "protein_id,family\np0,er\np1,er\np2,golgi\n"))),
         2, "match when case is ignored"),
    Case("analyze", "-o is the embeddings file",
         lambda ws: ["analyze", str(ws.embeddings), "-o", str(ws.embeddings), "-q"], 2,
         "writing there would destroy it"),
    Case("analyze", "a crop store given as the embeddings file",
         lambda ws: ["analyze", str(ws.store), "-o", str(ws.path("rep9")), "-q"], 2,
         "is a crop store, not an embeddings file"),
    Case("explore", "a crop store given as the embeddings file",
         lambda ws: ["explore", str(ws.store), "-o", str(ws.path("x3.html")), "-q"], 2,
         "is a crop store, not an embeddings file"),
    Case("analyze", "--max-points 0",
         lambda ws: ["analyze", str(ws.embeddings), "-o", str(ws.path("rep7")), "-q", "--allow-degenerate", "--max-points", "0"],
         2, "`max_points` must be >= 1"),
    Case("analyze", "--split test of a file without test crops",
         lambda ws: ["analyze", str(_val_embeddings(ws)), "-o", str(ws.path("rep8")), "-q", "--allow-degenerate"],
         2, "`split` 'test' not in the embeddings file"),
    Case("synth", "-o is a folder of the user's files (their own manifest.csv)",
         lambda ws: ["synth", "-o", str(_user_folder(ws, "myscreen", {"manifest.csv": "path,protein_id\n"})), "-q"],
         2, "non-empty folder that cyto did not write"),
    Case("demo", "--device tpu (refused before any work)",
         lambda ws: ["demo", "-o", str(ws.path("d1")), "--device", "tpu", "-q"], 2, "`device`"),
    Case("demo", "-o is a folder of the user's files",
         lambda ws: ["demo", "-o", str(_user_folder(ws, "mydemo", {"report.html": "mine"})), "-q"], 2,
         "non-empty folder that cyto did not write"),
    # ------------------------------------------------------------------ global mistakes
    Case("preprocess", "--crop-size 100000",
         lambda ws: [*_preprocess(ws, ws.manifest("cs.csv", f"path,protein_id\n{ws.fov()},P0\n"))[:-3], "--crop-size", "100000"],
         2, "`crop_size` 100000 is larger than the fields"),
    Case("preprocess", "--nucleus-diameter 1e9",
         lambda ws: [*_preprocess(ws, ws.manifest("nd.csv", f"path,protein_id\n{ws.fov()},P0\n")), "--nucleus-diameter", "1e9"],
         2, "`nucleus_diameter` 1e+09 px is larger than half a field"),
    Case("preprocess", "--downsample 1000",
         lambda ws: [*_preprocess(ws, ws.manifest("d1k.csv", f"path,protein_id\n{ws.fov()},P0\n")), "--downsample", "1000"],
         2, "`downsample_factor` 1000 leaves 0 px"),
    Case("preprocess", "every image is an empty (0-byte) file",
         lambda ws: _preprocess(ws, ws.manifest("zb.csv", f"path,protein_id\n{ws.manifest('zero.tif', b'')},P0\n")),
         2, "every image of the dataset is an empty file"),
    Case("preprocess", "PNG images (named .tif)",
         lambda ws: _preprocess(ws, ws.manifest("png.csv", f"path,protein_id\n{_flat_image(ws, 'flat.tif', 'png')},P0\n")),
         2, "are PNG files"),
    Case("preprocess", "JPEG images",
         lambda ws: _preprocess(ws, ws.manifest("jpg.csv", f"path,protein_id\n{_flat_image(ws, 'photo.jpg', 'jpeg')},P0\n")),
         2, "are JPEG files"),
    Case("train", "--resume of a run whose config.json is damaged",
         lambda ws: ["train", "--resume", str(_damaged_run(ws))],
         2, "is damaged (not UTF-8 text)"),
]  # fmt: skip


def run_case(case: Case, ws: Workspace) -> tuple[int, str]:
    """Run one case; returns the exit code and the first line of the error message."""
    from cyto.cli import main

    argv = case.argv(ws)
    held = contextlib.nullcontext()
    if argv and argv[0] == "__locked__":
        held, argv = _held(Path(argv[1])), argv[2:]
        if "train" in argv:
            Path(argv[argv.index("-o") + 1]).mkdir(exist_ok=True)
    err = io.StringIO()
    with held, contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse
            code = int(exit_.code or 0)
    lines = [line for line in err.getvalue().splitlines() if "error" in line or "skipped" in line]
    return code, " / ".join(lines) if lines else err.getvalue().strip()


def main() -> int:
    """Run every case and write ``docs/bad_inputs.md``."""
    root = Path(__file__).resolve().parents[1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp))
        for case in CASES:
            code, message = run_case(case, ws)
            ok = code == case.code and case.message in message
            rows.append((case, code, message, ok))
            print(
                f"{'ok ' if ok else 'BAD'} {case.command}: {case.what} -> {code}", file=sys.stderr
            )
    lines = [
        "# Bad inputs and what cyto says",
        "",
        "Generated by `python tools/bad_inputs.py` (the same cases run in "
        "`tests/test_bad_inputs.py`). Exit codes: 0 ok, 1 some inputs skipped (the rest "
        "done), 2 bad input or environment (nothing done), 3 stopped on bad numbers "
        "(non-finite loss, degenerate encodings), 4 another process is writing the same "
        "output, 70 a bug in cyto (`--debug` shows the traceback), 130 interrupted.",
        "",
        "| command | bad input | exit | message (paths shortened) |",
        "|---|---|---|---|",
    ]
    for case, code, message, _ in rows:
        text = message.replace(str(ws.root) + "/", "").replace("|", "\\|")
        lines.append(f"| `cyto {case.command}` | {case.what} | {code} | {text} |")
    out = root / "docs" / "bad_inputs.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
