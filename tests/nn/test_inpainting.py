"""Lu et al. (2019)'s paired cell inpainting: pair sampler, layer shapes, training,
exact resume, embedding and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cyto.cli import main
from cyto.data import Embeddings
from cyto.nn import (
    PairedCropDataset,
    PairedInpainting,
    PairedInpaintingConfig,
    TrainConfig,
    embed,
    load_checkpoint,
    load_model,
    train,
)

from .helpers import assert_same_weights, epochs, make_store

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = TrainConfig(
    preset="tiny", batch_size=8, max_epochs=2, num_workers=0, log_every=1, progress=False
)
LU = {"model": "paired_inpainting"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("lu") / "crops.h5", n_per_protein=8, proteins=4)


def test_pairs_stay_within_a_protein_never_self_and_prefer_another_field(tmp_path) -> None:
    from cyto.data import write_crop_store

    # 5 proteins: A has 6 crops in 3 fields, B 2 crops in one field, C a single crop
    pids = np.array(["A"] * 6 + ["B"] * 2 + ["C"] + ["D"] * 3 + ["E"] * 4)
    fovs = np.array(["a1", "a1", "a2", "a2", "a3", "a3", "b1", "b1", "c1"] + ["d"] * 3 + ["e"] * 4)
    crops = np.zeros((pids.size, 2, 8, 8), np.float16)
    crops[:, 0] = np.arange(pids.size)[:, None, None]  # each crop's row in its pixels
    path = write_crop_store(tmp_path / "c.h5", crops, pids, fov_ids=fovs)
    labels = np.unique(pids, return_inverse=True)[1]
    ds = PairedCropDataset(path, labels=labels, fields=fovs, seed=3)
    assert ds.left_out == 1 and 8 not in ds.indices  # C has no partner
    for epoch in range(5):
        ds.set_epoch(epoch)
        partners = ds.partners(ds.indices, epoch=epoch)
        assert np.all(partners != ds.indices)
        assert np.array_equal(pids[partners], pids[ds.indices])
        for r, p in zip(ds.indices, partners):
            if pids[r] == "A":
                assert fovs[p] != fovs[r]  # another field whenever the protein has one
        pairs, _ = ds.read(np.arange(len(ds)))
        assert pairs.shape == (len(ds), 4, 8, 8)
        # source channels, then the partner's: pixel values name the rows
        assert np.array_equal(pairs[:, 0, 0, 0], ds.indices)
        assert np.array_equal(pairs[:, 2, 0, 0], partners)
    # the same (seed, epoch) gives the same pairs in any process; epochs differ
    again = PairedCropDataset(path, labels=labels, fields=fovs, seed=3)
    first = again.partners(again.indices, epoch=0)
    assert np.array_equal(first, ds.partners(ds.indices, epoch=0))
    assert not all(np.array_equal(first, ds.partners(ds.indices, epoch=e)) for e in range(1, 5))
    with pytest.raises(ValueError, match="`fields`"):
        PairedCropDataset(path, labels=labels, fields=fovs[:3])


@pytest.mark.parametrize(
    ("preset", "size", "widths"),
    [("tiny", 32, (24, 24, 16)), ("small", 100, (48, 48, 32)), ("paper", 100, (384, 384, 256))],
)
def test_every_layer_has_the_published_shape(preset: str, size: int, widths: tuple) -> None:
    cfg = PairedInpaintingConfig.preset(preset)
    model = PairedInpainting(cfg).eval()
    with torch.no_grad():
        feats = model.features(torch.zeros(2, 2, size, size))
        out = model(torch.zeros(2, 4, size, size))
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "conv3": (2, widths[0]),
        "conv4": (2, widths[1]),
        "conv5": (2, widths[2]),
    }
    assert out.prediction.shape == (2, 1, size, size)
    assert out.encoding.shape == (2, widths[1])  # conv4 by default
    layout = model.embed_layout()
    assert {k: w for k, (w, _) in layout.items()} == {
        "global": widths[1],
        "layer_conv3": widths[0],
        "layer_conv4": widths[1],
        "layer_conv5": widths[2],
    }


def test_config_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="at least 2 channels"):
        PairedInpaintingConfig(in_channels=1)
    with pytest.raises(ValueError, match="multiple of 4"):
        PairedInpaintingConfig(image_size=30)
    with pytest.raises(ValueError, match="feature_layer"):
        PairedInpaintingConfig(feature_layer="conv1")
    with pytest.raises(ValueError, match="unknown config field"):
        PairedInpaintingConfig.from_dict({"widht": 2})
    cfg = PairedInpaintingConfig.preset("small")
    assert PairedInpaintingConfig.from_saved(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="expected pairs"):
        PairedInpainting(PairedInpaintingConfig.preset("tiny"))(torch.zeros(1, 2, 32, 32))


def test_loss_is_the_target_protein_channel_mse() -> None:
    model = PairedInpainting(PairedInpaintingConfig.preset("tiny"))
    pair = torch.randn(3, 4, 32, 32)
    out = model(pair)
    loss = model.loss(pair, torch.zeros(3), out, reconstruction_scale=2.0)
    want = torch.mean((out.prediction - pair[:, 2:3]) ** 2) / 2.0
    torch.testing.assert_close(loss.total, want)
    assert loss.task is loss.total and set(loss.terms) == {"reconstruction"}


@pytest.fixture(scope="module")
def lu_run(store, tmp_path_factory):
    return train(store, tmp_path_factory.mktemp("lu_ref") / "run", config=FAST, model_overrides=LU)


def test_training_lowers_the_loss_and_embed_writes_every_layer(lu_run, store, tmp_path) -> None:
    recs = epochs(lu_run)
    assert [r["epoch"] for r in recs] == [0, 1]
    assert recs[-1]["train_loss"] < recs[0]["train_loss"]
    model = load_model(lu_run)
    assert isinstance(model, PairedInpainting)
    out = embed(lu_run, store, tmp_path / "emb.h5", progress=False, allow_degenerate=True)
    with Embeddings(out) as emb:
        assert emb.shape("global") == (32, 24)
        assert emb.shape("layer_conv3") == (32, 24) and emb.shape("layer_conv5") == (32, 16)
        np.testing.assert_array_equal(emb.read("global"), emb.read("layer_conv4"))
        assert "paired_inpainting" in emb.attrs["model_config"]
        assert set(emb.split) <= {"train", "val", "test"}


def test_resume_is_exact(lu_run, store, tmp_path, monkeypatch) -> None:
    run = tmp_path / "run"
    original, count = PairedCropDataset.read, {"n": 0}

    def read(self, positions):  # a kill at the 5th training batch: mid-epoch 1
        if self.augment is not None:
            count["n"] += 1
            if count["n"] == 5:
                raise KeyboardInterrupt("simulated kill")
        return original(self, positions)

    monkeypatch.setattr(PairedCropDataset, "read", read)
    with pytest.raises(KeyboardInterrupt):
        train(store, run, config=FAST, model_overrides=LU)
    monkeypatch.undo()
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 1
    train(store, run, resume=True)
    assert_same_weights(run / "checkpoints" / "last.pt", lu_run / "checkpoints" / "last.pt")
    got, want = epochs(run), epochs(lu_run)
    np.testing.assert_allclose([r["train_loss"] for r in got], [r["train_loss"] for r in want])


def test_cli_trains_embeds_and_analyzes_it(store, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    run, emb = tmp_path / "run", tmp_path / "emb.h5"
    argv = ["train", str(store), "-o", str(run), "--model", "paired_inpainting"]
    argv += ["--preset", "tiny", "--max-epochs", "1", "--batch-size", "8", "-j", "0", "-q"]
    assert main(argv) == 0
    assert main(["embed", str(run), str(store), "-o", str(emb), "-q", "--allow-degenerate"]) == 0
    # every analysis command works on it unchanged (no local codes: no spectra)
    code = main(
        [
            "analyze",
            str(emb),
            "-o",
            str(tmp_path / "rep"),
            "--split",
            "all",
            "-q",
            "--allow-degenerate",
        ]
    )
    assert code == 0 and (tmp_path / "rep" / "report.html").is_file()
