"""Any label to identify (``--target``) and named channels that must match at embedding."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from cyto.cli import main
from cyto.data import CropStore, CropStoreWriter
from cyto.nn import embed, load_model, train

from .helpers import FAST

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STAINS = ("DNA", "ER", "RNA", "AGP", "Mito")


def _plate_store(path, channels=STAINS, *, seed=0):
    """A 5-stain store: 8 wells, 2 compounds (the target), 8 crops a well; the compound
    brightens one stain (its 'phenotype'); protein_id holds the well."""
    rng = np.random.default_rng(seed)
    wells = [f"W{k}" for k in range(8)]
    compound = {w: ("taxol", "DMSO")[k % 2] for k, w in enumerate(wells)}
    writer = CropStoreWriter(path, channels=channels, crop_size=32, dtype=np.float32, params=None)
    for w in wells:
        x = rng.normal(0, 0.3, (8, len(channels), 32, 32)).astype(np.float32)
        if compound[w] == "taxol":
            x[:, 2, 8:24, 8:24] += 2.0
        fovs = np.array([f"{w}-f{i % 4}" for i in range(8)])
        writer.append(x, np.full(8, w), fovs, np.zeros((8, 2), np.int32), np.arange(8))
    table = [(f, w, "", 2, "") for w in wells for f in (f"{w}-f{i}" for i in range(4))]
    writer.write_fov_table(
        table, metadata={f: {"Metadata_compound": compound[w]} for f, w, *_ in table}
    )
    writer.close()
    return path


def test_train_identifies_a_label_column_and_records_it(tmp_path) -> None:
    store = _plate_store(tmp_path / "plate.h5")
    with CropStore(store) as s:
        assert set(s.labels("Metadata_compound")) == {"taxol", "DMSO"}
        with pytest.raises(ValueError, match=r"'Metadata_gene' is not a label column.*compound"):
            s.labels("Metadata_gene")
    run = train(store, tmp_path / "run", config=FAST.replace(target="Metadata_compound"))
    model = load_model(run)
    assert model.config.in_channels == 5 and model.config.num_classes == 2
    out = embed(run, store, tmp_path / "emb.h5", logits=True, progress=False, num_workers=0,
                allow_degenerate=True)  # fmt: skip
    with h5py.File(out, "r") as f:
        assert f["logits"].shape == (64, 2)
        # the run's own split is found again through its target column
        assert set(f["split"].asstr()[:]) <= {"train", "val", "test"}
        assert "none" not in set(f["split"].asstr()[:])


def test_the_cli_target_and_a_store_of_other_channels_refused(tmp_path, capsys) -> None:
    store = _plate_store(tmp_path / "plate.h5")
    run = tmp_path / "run"
    code = main(["train", str(store), "-o", str(run), "--target", "Metadata_compound",
                 "--preset", "tiny", "--max-epochs", "1", "--batch-size", "8",
                 "--workers", "0", "-q"])  # fmt: skip
    assert code == 0
    reordered = _plate_store(
        tmp_path / "reordered.h5", channels=("ER", "DNA", "RNA", "AGP", "Mito")
    )
    with pytest.raises(ValueError) as info:
        embed(run, reordered, tmp_path / "e.h5", progress=False, num_workers=0)
    assert str(info.value) == (
        f"crop store {reordered} has channels ['ER', 'DNA', 'RNA', 'AGP', 'Mito'], the model "
        "was trained on ['DNA', 'ER', 'RNA', 'AGP', 'Mito']: the names and their order must "
        "be the same"
    )
    assert not (tmp_path / "e.h5").exists()
    code = main(["train", str(store), "-o", str(tmp_path / "r2"), "--target", "Metadata_gene",
                 "--preset", "tiny", "-q"])  # fmt: skip
    assert code == 2 and "is not a label column" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()
