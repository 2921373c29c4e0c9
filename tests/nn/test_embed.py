"""cyto embed: keys and shapes, agreement with the model, splits, streaming, resume, h5ad."""

from __future__ import annotations

import functools
import tracemalloc

import h5py
import numpy as np
import pytest
import torch

from cyto.cli import main
from cyto.data import CropStore, Embeddings, write_crop_store
from cyto.nn import CropDataset, Cytoself, TrainConfig, load_model, train
from cyto.nn import embed as _embed

from .helpers import make_store

# The fixture's run trains 4 steps of the tiny model, whose encodings are degenerate
# (the health check refuses them: tests/nn/test_health.py); these tests check the file.
embed = functools.partial(_embed, allow_degenerate=True)

CFG = TrainConfig(
    preset="tiny", batch_size=8, max_epochs=1, num_workers=0, log_every=1, progress=False
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    store = make_store(root / "crops.h5")
    run = train(store, root / "run", config=CFG)
    return store, run


def _read(path):
    with h5py.File(path, "r") as f:
        data = {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}
        attrs = dict(f.attrs)
    return data, attrs


def test_embed_keys_shapes_and_values(trained, tmp_path):
    store, run = trained
    out = embed(
        run,
        store,
        tmp_path / "emb.h5",
        batch_size=5,
        logits=True,
        local=True,
        num_workers=0,
        progress=False,
    )
    data, attrs = _read(out)
    n = 32
    model = load_model(run)
    d, lh, lw = model.local_shape
    g, gh, gw = model.global_shape
    kl, kg = model.config.num_embeddings_local, model.config.num_embeddings_global
    shapes = {
        "global": (n, g * gh * gw),
        "local": (n, d * lh * lw),
        "local_indices": (n, lh * lw),
        "global_indices": (n, 9 * gh * gw),
        "local_hist": (n, kl),
        "global_hist": (n, kg),
        "logits": (n, 4),
        "logits_local": (n, 4),
        "protein_id": (n,),
        "fov_id": (n,),
        "crop_index": (n,),
        "split": (n,),
        "classes": (4,),
    }
    assert {k: v.shape for k, v in data.items()} == shapes
    assert attrs["complete"] and attrs["n"] == n
    assert attrs["num_embeddings_local"] == 32 and list(attrs["global_shape"]) == [g, gh, gw]
    np.testing.assert_array_equal(data["crop_index"], np.arange(n))
    with CropStore(store) as s:
        np.testing.assert_array_equal(data["protein_id"].astype(str), s.protein_ids)
        x = torch.from_numpy(s.read(np.arange(n)))
    with np.load(run / "split.npz") as z:
        names = np.array(["train", "val", "test"])[z["split"]]
    np.testing.assert_array_equal(data["split"].astype(str), names)
    # histograms are bincounts of the index maps
    assert (data["local_hist"].sum(1) == lh * lw).all()
    assert (data["global_hist"].sum(1) == 9 * gh * gw).all()
    for i in (0, 17):
        np.testing.assert_array_equal(
            data["global_hist"][i], np.bincount(data["global_indices"][i], minlength=kg)
        )
    # values agree with a direct forward pass of the best model
    with torch.inference_mode():
        ref = model(x)
    np.testing.assert_allclose(data["global"], ref.global_quantized.flatten(1).numpy(), atol=1e-5)
    np.testing.assert_array_equal(data["local_indices"], ref.local_indices.flatten(1).numpy())
    np.testing.assert_allclose(data["logits"], ref.logits_global.numpy(), rtol=1e-4, atol=1e-4)
    # the fast global-only path gives the same global outputs and skips the local ones
    fast, attrs = _read(
        embed(run, store, tmp_path / "g.h5", global_only=True, logits=True, local=True,
              num_workers=0, progress=False)
    )  # fmt: skip
    assert set(fast) == set(shapes) - {"local", "local_indices", "local_hist", "logits_local"}
    for key in ("global", "global_indices", "global_hist", "logits"):
        np.testing.assert_allclose(fast[key], data[key], rtol=1e-5, atol=1e-5)


def test_embed_one_split_and_foreign_store(trained, tmp_path):
    store, run = trained
    data, _ = _read(
        embed(run, store, tmp_path / "t.h5", split="test", num_workers=0, progress=False)
    )
    with np.load(run / "split.npz") as z:
        test_rows = np.flatnonzero(z["split"] == 2)
    np.testing.assert_array_equal(data["crop_index"], test_rows)
    assert set(data["split"].astype(str)) == {"test"} and "logits" not in data
    other = make_store(tmp_path / "other.h5", n_per_protein=3, seed=5)
    data, _ = _read(embed(run, other, tmp_path / "o.h5", num_workers=0, progress=False))
    assert data["global"].shape[0] == 12 and set(data["split"].astype(str)) == {"none"}
    with pytest.raises(ValueError, match="different store"):
        embed(run, other, tmp_path / "o2.h5", split="test", progress=False)
    wrong = write_crop_store(
        tmp_path / "w.h5", np.zeros((2, 1, 32, 32), np.float32), "A", channels=("protein",)
    )
    with pytest.raises(ValueError, match=r"has channels \['protein'\], the model was trained on"):
        embed(run, wrong, tmp_path / "w_out.h5", progress=False)
    with pytest.raises(ValueError, match="split"):
        embed(run, store, tmp_path / "x.h5", split="holdout")


def test_embed_streams_in_bounded_chunks(trained, tmp_path, monkeypatch):
    store, run = trained
    big = make_store(tmp_path / "big.h5", n_per_protein=64, seed=1)  # 256 crops
    reads = []
    original = CropDataset._read_rows

    def spy(self, idx):
        reads.append(len(idx))
        return original(self, idx)

    monkeypatch.setattr(CropDataset, "_read_rows", spy)
    peaks = {}
    for name, path in (("small", store), ("big", big)):
        tracemalloc.start()
        embed(
            run,
            path,
            tmp_path / f"emb_{name}.h5",  # not big.h5: that is the store
            batch_size=8,
            local=True,
            num_workers=0,
            progress=False,
        )
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert max(reads) <= 8  # never more than one chunk of crops in memory
    # 8x the crops, (nearly) the same peak of Python/NumPy allocations
    assert peaks["big"] < 1.5 * peaks["small"], peaks


def test_interrupted_embedding_resumes(trained, tmp_path, monkeypatch):
    store, run = trained
    ref, _ = _read(
        embed(run, store, tmp_path / "ref.h5", batch_size=4, num_workers=0, progress=False)
    )
    original = Cytoself.embed_arrays
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("simulated kill")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Cytoself, "embed_arrays", flaky)
    out = tmp_path / "emb.h5"
    with pytest.raises(KeyboardInterrupt):
        embed(run, store, out, batch_size=4, num_workers=0, progress=False)
    assert not out.exists()
    partial = tmp_path / ".emb.h5.partial"
    with h5py.File(partial, "r") as f:
        assert f.attrs["done"] == 12
    calls["n"] = -100  # no more failures; count the chunks encoded by the rerun
    got, _ = _read(embed(run, store, out, batch_size=4, num_workers=0, progress=False))
    assert calls["n"] == -100 + 5  # only the 20 remaining crops were encoded
    assert not partial.exists()
    for key in ref:
        np.testing.assert_array_equal(got[key], ref[key])


def test_cli_embed_with_h5ad(trained, tmp_path):
    anndata = pytest.importorskip("anndata")
    store, run = trained
    out = tmp_path / "emb.h5"
    argv = [
        "embed",
        str(run),
        str(store),
        "-o",
        str(out),
        "--h5ad",
        "--workers",
        "0",
        "--quiet",
        "--split",
        "train",
    ]
    assert main(argv) == 3  # the 4-step run is degenerate: refused, nothing written
    assert not out.exists()
    assert main([*argv, "--allow-degenerate"]) == 0
    adata = anndata.read_h5ad(tmp_path / "emb.h5ad")
    data, _ = _read(out)
    assert adata.n_obs == data["global"].shape[0]
    assert list(adata.obs.columns) == [
        "protein_id",
        "fov_id",
        "split",
        "crop_index",
        "center_row",
        "center_col",
        "nucleus_id",
    ]
    # X is the global encoding, one row per crop (flattened), one var per feature
    np.testing.assert_array_equal(adata.X, data["global"].reshape(adata.n_obs, -1))
    assert adata.var_names[0] == "global_0"
    np.testing.assert_array_equal(adata.obsm["local_hist"], data["local_hist"])
    assert list(adata.uns["classes"]) == ["P0", "P1", "P2", "P3"]


def test_field_metadata_and_crop_centres_reach_the_h5ad(trained, tmp_path):
    """plate/well/field of each crop's field travel store → embeddings → AnnData obs."""
    anndata = pytest.importorskip("anndata")
    from cyto.data import CropStoreWriter, export_h5ad

    store, run = trained
    with CropStore(store) as src:
        crops, pids, fovs = src.read(slice(None)), src.protein_ids, src.fov_ids
        params = dict(src.params)
    centers = np.stack([np.arange(len(pids)), 2 * np.arange(len(pids))], axis=1)
    target = tmp_path / "with_meta.h5"
    w = CropStoreWriter(
        target,
        channels=("protein", "distance"),
        crop_size=crops.shape[-1],
        dtype=crops.dtype,
        params=params,
    )
    w.append(crops, pids.astype(object), fovs.astype(object), centers, np.arange(len(pids)) + 1)
    uniq = sorted(set(fovs))
    table = [(f, str(pids[fovs == f][0]), "x.tif", int((fovs == f).sum()), "") for f in uniq]
    meta = {
        f: {"plate": "P1", "well": f"B{i:02d}", "field": str(i % 3)} for i, f in enumerate(uniq)
    }
    w.write_fov_table(table, meta)
    w.close()
    out = embed(run, target, tmp_path / "emb.h5", num_workers=0, progress=False)
    with Embeddings(out) as emb:
        obs = emb.obs()
    assert obs["center_col"].tolist() == (2 * np.arange(len(pids))).tolist()
    assert obs["well"].tolist() == [meta[f]["well"] for f in fovs]
    h5ad = export_h5ad(out, tmp_path / "emb.h5ad")
    adata = anndata.read_h5ad(h5ad)
    assert adata.obs["plate"].tolist() == ["P1"] * len(pids)
    assert adata.obs["field"].tolist() == [meta[f]["field"] for f in fovs]
    assert adata.obs["nucleus_id"].tolist() == (np.arange(len(pids)) + 1).tolist()
    prov = adata.uns["provenance"]
    assert prov["run"] == str(run.resolve()) and "torch" in prov["versions"]
    with h5py.File(h5ad, "r") as f:  # gzip: readable outside h5py (R, Julia, h5dump)
        assert f["X"].compression == "gzip"
        assert f["obsm/local_hist"].compression == "gzip"
