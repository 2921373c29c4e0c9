"""Real Cell Painting wells (NF1, ``../shared/data/cellpainting_nf1``) with all their
stains in one store: preprocess -> train -> embed -> evaluate from the command line."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from cyto.cli import main
from cyto.data import CropStore, Embeddings
from cyto.nn import load_checkpoint

STAINS = ("DAPI", "GFP", "RFP")
WELLS = ("B7", "D6", "D7", "F7", "H12")


def _manifest(data: Path, out: Path) -> Path:
    """One row per well: the three stains' files and CellProfiler's nucleus mask."""
    images = sorted((data / "images").iterdir())
    masks = sorted((data / "masks").iterdir())
    rows = ["DAPI,GFP,RFP,mask_path,protein_id,fov_id,well"]
    for well in WELLS:
        mine = [p for p in images if p.name.startswith(f"{well}_")]
        files = [next(str(p) for p in mine if f"_{s}_" in p.name) for s in STAINS]
        mask = next(p for p in masks if p.name.startswith(f"{well}_") and "MaskNuclei" in p.name)
        rows.append(",".join([*files, str(mask), well, well, well]))
    out.write_text("\n".join(rows) + "\n")
    return out


@pytest.mark.slow
def test_nf1_wells_through_every_stage(shared_data: Path, tmp_path: Path) -> None:
    data = shared_data / "cellpainting_nf1"
    if not data.is_dir():
        pytest.skip(f"{data} not available")
    manifest = _manifest(data, tmp_path / "manifest.csv")
    store, run, emb = tmp_path / "crops.h5", tmp_path / "run", tmp_path / "emb.h5"
    pre = ["preprocess", str(manifest), "-o", str(store), "--channels", ",".join(STAINS),
           "--nucleus-channel", "DAPI", "--crop-size", "64", "--workers", "1", "-q"]  # fmt: skip
    assert main(pre) == 0
    with CropStore(store) as s:
        assert s.channels == STAINS and len(s) > 60
        assert set(s.protein_ids.tolist()) == set(WELLS)
        assert set(s.labels("well")) == set(WELLS)
    # one field per well: crops of a well are split at random (not by field)
    toml = tmp_path / "train.toml"
    toml.write_text(
        "[train]\nbatch_size = 16\nmax_epochs = 2\nnum_workers = 0\ngroup_by_fov = false\n"
        '[model]\npreset = "tiny"\n'
    )
    assert main(["train", str(store), "-o", str(run), "--config", str(toml), "-q"]) == 0
    assert load_checkpoint(run / "checkpoints" / "last.pt")["store"]["channels"] == list(STAINS)
    assert main(["embed", str(run), str(store), "-o", str(emb), "--no-progress",
                 "--allow-degenerate"]) == 0  # fmt: skip
    with Embeddings(emb) as e:
        assert e.n > 60 and json.loads(e.attrs["model_config"])["in_channels"] == 3
    gt = tmp_path / "wells.csv"
    gt.write_text("protein_id,family\n" + "".join(f"{w},{w}\n" for w in WELLS))
    card = tmp_path / "card"
    cp = ["--cellprofiler"] if importlib.util.find_spec("cp_measure") else []
    assert main(["evaluate", str(emb), "--ground-truth", str(gt), "-o", str(card), "-q",
                 "--allow-degenerate", *cp]) == 0  # fmt: skip
    rows = json.loads((card / "evaluation.json").read_text())["rows"]
    names = {r["representation"] for r in rows}
    assert names >= {"cyto (global encodings)", "baseline: pixels"}
    assert ("baseline: CellProfiler (cp-measure)" in names) == bool(cp)
