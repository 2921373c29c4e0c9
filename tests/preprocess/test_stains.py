"""Manifests that name their stains (Cell Painting): wide and long layouts, through the CLI
into a store of named channels; the errors name the manifest, the column and what was found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from cyto.cli import main
from cyto.data import CropStore
from cyto.preprocess import preprocess_dataset, read_manifest

from ._synth import grid_centers, nuclei_field

STAINS = ("DNA", "ER", "Mito")


def _write_field(root: Path, name: str, seed: int) -> dict[str, str]:
    """Three single-channel TIFFs of one field: the DNA stain and two cytoplasmic ones."""
    centers = grid_centers((256, 256), spacing=70, margin=58)
    dna, labels = nuclei_field((256, 256), centers, 16, seed=seed)
    rng = np.random.default_rng(seed)
    images = {
        "DNA": dna,
        "ER": 200 + 600 * (labels == 0) + rng.normal(0, 20, labels.shape),
        "Mito": 200 + 900 * (labels > 0) * rng.random() + rng.normal(0, 20, labels.shape),
    }
    files = {}
    for stain, image in images.items():
        files[stain] = f"{name}_{stain}.tif"
        tifffile.imwrite(root / files[stain], image.clip(0, 65535).astype(np.uint16))
    return files


@pytest.fixture(scope="module")
def plate(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plate")
    wide = ["DNA,ER,Mito,protein_id,fov_id,well,Metadata_compound"]
    long = ["path,channel,fov_id,protein_id,well"]
    for k, (well, compound) in enumerate([("A1", "DMSO"), ("A2", "taxol"), ("B1", "DMSO")]):
        files = _write_field(root, well, seed=k)
        wide.append(f"{files['DNA']},{files['ER']},{files['Mito']},{compound},{well},{well},"
                    f"{compound}")  # fmt: skip
        long += [f"{files[s]},{s},{well},{compound},{well}" for s in reversed(STAINS)]
    (root / "wide.csv").write_text("\n".join(wide) + "\n")
    (root / "long.csv").write_text("\n".join(long) + "\n")
    return root


def test_wide_and_long_manifests_give_the_same_fields(plate) -> None:
    wide = read_manifest(plate / "wide.csv", channels=(*STAINS, "distance"))
    long = read_manifest(plate / "long.csv", channels=STAINS)
    assert [s.fov_id for s in wide] == [s.fov_id for s in long] == ["A1", "A2", "B1"]
    assert [s.stains for s in wide] == [s.stains for s in long]
    assert [n for n, _, _ in wide[0].stains] == list(STAINS)
    assert dict(wide[1].metadata) == {"well": "A2", "Metadata_compound": "taxol"}
    assert wide[1].protein_id == "taxol"


def test_cli_writes_a_store_of_named_stains(plate, tmp_path) -> None:
    out = tmp_path / "crops.h5"
    code = main(
        ["preprocess", str(plate / "wide.csv"), "-o", str(out), "--channels", "DNA,ER,Mito",
         "--nucleus-channel", "DNA", "--crop-size", "48", "--workers", "1", "-q"]
    )  # fmt: skip
    assert code == 0
    with CropStore(out) as store:
        assert store.channels == STAINS
        assert store.params["nucleus_channel"] == "DNA"
        assert store.read([0]).shape == (1, 3, 48, 48)
        assert set(store.protein_ids.tolist()) == {"DMSO", "taxol"}
        assert set(store.crop_obs(np.arange(len(store)))["Metadata_compound"]) == {"DMSO", "taxol"}
        crops = store.read(np.arange(len(store))).astype(np.float32)
    # the nuclear stain is bright at the centre of every crop (centred on its nucleus)
    assert (crops[:, 0, 24, 24] > crops[:, 0, 0, 0]).all()
    # the same fields from the long layout give the same crops
    again = tmp_path / "long.h5"
    report = preprocess_dataset(
        plate / "long.csv", again, channels=STAINS, nucleus_channel="DNA", crop_size=48,
        workers=1, progress=False,
    )  # fmt: skip
    assert report.n_failed == 0
    with CropStore(again) as store:
        np.testing.assert_array_equal(store.read(np.arange(len(store))).astype(np.float32), crops)


def test_a_stain_the_manifest_lacks_names_the_manifest_column_and_found(plate, capsys) -> None:
    code = main(["preprocess", str(plate / "wide.csv"), "-o", str(plate / "x.h5"),
                 "--channels", "DNA,ER,AGP", "--nucleus-channel", "DNA", "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "wide.csv: --channels names ['DNA', 'ER', 'AGP'] but the manifest has no column " in err
    assert "['AGP']" in err and "'Mito'" in err
    code = main(["preprocess", str(plate / "long.csv"), "-o", str(plate / "x.h5"),
                 "--channels", "DNA,RNA", "--nucleus-channel", "DNA", "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "field 'A1' has no image of channel(s) ['RNA'] in column 'channel'" in err
    assert "the manifest's channels: ['DNA', 'ER', 'Mito']" in err
    assert not (plate / "x.h5").exists()


def test_named_stains_need_their_nucleus_channel(plate, tmp_path, capsys) -> None:
    code = main(["preprocess", str(plate / "wide.csv"), "-o", str(tmp_path / "a.h5"),
                 "--channels", "DNA,ER", "-q"])  # fmt: skip
    assert code == 2 and "`nucleus_channel` is required" in capsys.readouterr().err
    code = main(["preprocess", str(plate / "wide.csv"), "-o", str(tmp_path / "a.h5"),
                 "--channels", "DNA,ER", "--nucleus-channel", "Mito", "-q"])  # fmt: skip
    assert code == 2 and "must be one of `channels`" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["preprocess", str(plate / "wide.csv"), "-o", str(tmp_path / "a.h5"),
              "--channels", "DNA,2ER"])  # fmt: skip
    assert "--channels" in capsys.readouterr().err
