"""A small fake embeddings file in the layout `cyto embed` writes (plus ground truth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FAMILIES = ("er", "nucleolus_gc", "mitochondria", "chromatin")


def make_embeddings(
    folder: Path, *, n_per_protein: int = 12, num_codes: int = 64, seed: int = 0
) -> dict[str, Path]:
    """Write embeddings.h5, crops.h5, annotations.csv and complexes.csv into ``folder``.

    16 proteins in 4 families (4 each); every family uses its own block of codes and sits
    at its own place in the global-feature space. The last protein of each family is left
    out of the annotations (to be localized from its spectrum).
    """
    import h5py

    rng = np.random.default_rng(seed)
    proteins = [f"P{f}{k}" for f in range(4) for k in range(4)]
    fam_of = {p: FAMILIES[int(p[1])] for p in proteins}
    n = len(proteins) * n_per_protein
    pid = np.repeat(proteins, n_per_protein)
    fam_idx = np.array([int(p[1]) for p in pid])
    centres = rng.normal(scale=6.0, size=(4, 32))
    offsets = {p: rng.normal(scale=1.0, size=32) for p in proteins}
    glob = centres[fam_idx] + np.stack([offsets[p] for p in pid]) + rng.normal(size=(n, 32))
    block = num_codes // 4
    own = fam_idx[:, None] * block + rng.integers(0, block, size=(n, 49))
    noise = rng.integers(0, num_codes, size=(n, 49))
    local = np.where(rng.random((n, 49)) < 0.8, own, noise)
    hist = np.stack([np.bincount(r, minlength=num_codes) for r in local]).astype(np.uint16)
    split = np.where(np.arange(n) % 3 == 0, "test", "train")
    crops = rng.random((n, 2, 16, 16)).astype(np.float32)
    crops[:, 0, 4:12, 4:12] += fam_idx[:, None, None]
    folder.mkdir(parents=True, exist_ok=True)
    store = folder / "crops.h5"
    from cyto.data import write_crop_store

    write_crop_store(store, crops.astype(np.float16), pid)
    emb = folder / "embeddings.h5"
    sdt = h5py.string_dtype("utf-8")
    with h5py.File(emb, "w") as f:
        f.create_dataset("global", data=glob.astype(np.float32))
        f.create_dataset("local_indices", data=local.astype(np.uint16))
        f.create_dataset("local_hist", data=hist)
        f.create_dataset("protein_id", data=pid.astype(object), dtype=sdt)
        f.create_dataset(
            "fov_id", data=np.array([f"fov{i // 4}" for i in range(n)], dtype=object), dtype=sdt
        )
        f.create_dataset("split", data=split.astype(object), dtype=sdt)
        f.create_dataset("crop_index", data=np.arange(n, dtype=np.int64))
        f.attrs["format"] = "cyto-embeddings-1"
        f.attrs["run"] = str(folder / "run_full")
        f.attrs["store"] = str(store)
    ann = folder / "annotations.csv"
    lines = ["ensg_id,target_name,annotation_name,annotation_grade"]
    for i, p in enumerate(proteins):
        if p.endswith("3"):
            continue  # unannotated: localized from its spectrum
        lines.append(f"ENSG{i:011d},{p},{fam_of[p]},3")
    ann.write_text("\n".join(lines) + "\n")
    cx = folder / "complexes.csv"
    rows = ["protein_id,complex"] + [f"{p},C{p[1]}{int(p[2]) // 2}" for p in proteins]
    cx.write_text("\n".join(rows) + "\n")
    return {"embeddings": emb, "crops": store, "annotations": ann, "complexes": cx}


@pytest.fixture(scope="session")
def fake_embeddings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_embeddings(tmp_path_factory.mktemp("fake_embeddings"))
