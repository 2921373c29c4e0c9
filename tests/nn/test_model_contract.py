"""The model contract: every registered model trains a step, checkpoints, reloads and
embeds through the same code, and a model written outside cyto needs nothing else."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cyto.cli import main
from cyto.nn import (
    CytoModel,
    ModelConfig,
    ModelLoss,
    TrainConfig,
    build_model,
    embed,
    list_models,
    load_model,
    register_model,
    train,
)
from cyto.nn import _registry as registry

from .helpers import make_store

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ONE_EPOCH = TrainConfig(
    preset="tiny", batch_size=8, max_epochs=1, num_workers=0, progress=False, skip_degenerate=False
)


# ------------------------------------------------------------- a model from outside cyto
@dataclass(frozen=True)
class PoolConfig:
    """A pooled-convolution classifier: the smallest model the contract allows."""

    model: ClassVar[str] = "test_pool"
    in_channels: int = 2
    image_size: int = 32
    num_classes: int = 2
    width: int = 6

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> PoolConfig:
        return cls(**{"width": {"tiny": 6}.get(name, 12), **overrides})

    @classmethod
    def from_saved(cls, values: Any) -> PoolConfig:
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> PoolConfig:
        return dataclasses.replace(self, **changes)

    def for_data(self, *, in_channels: int, image_size: int, num_classes: int) -> PoolConfig:
        return self.replace(
            in_channels=in_channels, image_size=image_size, num_classes=max(num_classes, 2)
        )

    @property
    def codebook_sizes(self) -> tuple[int, int]:
        return (0, 0)

    @property
    def quantizer(self) -> None:
        return None


class PoolModel(nn.Module):
    paired: ClassVar[bool] = False

    def __init__(self, config: PoolConfig) -> None:
        super().__init__()
        self.config = config
        self.conv = nn.Conv2d(config.in_channels, config.width, 3, padding=1)
        self.head = nn.Linear(config.width, config.num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = F.relu(self.conv(x)).mean(dim=(2, 3))
        return {"features": features, "logits": self.head(features)}

    def loss(self, x, y, output, *, reconstruction_scale: float = 1.0) -> ModelLoss:
        ce = F.cross_entropy(output["logits"].float(), y)
        accuracy = (output["logits"].argmax(1) == y).float().mean().detach()
        return ModelLoss(total=ce, task=ce, terms={"cls": ce}, metrics={"accuracy": accuracy})

    def health_arrays(self, output):
        return output["features"], None

    @property
    def global_shape(self) -> tuple[int, ...]:
        return (self.config.width,)

    @property
    def local_shape(self) -> tuple[int, ...]:
        return (0,)

    def embed_layout(self, *, logits=False, local=False, global_only=False):
        layout = {"global": (self.config.width, np.dtype(np.float32))}
        if logits:
            layout["logits"] = (self.config.num_classes, np.dtype(np.float32))
        return layout

    def embed_arrays(self, x, *, logits=False, local=False, global_only=False):
        out = self(x)
        arrays = {"global": out["features"].float().cpu().numpy()}
        if logits:
            arrays["logits"] = out["logits"].float().cpu().numpy()
        return arrays


@pytest.fixture
def with_pool_model(monkeypatch):
    """``test_pool`` registered for one test (the registry is restored afterwards)."""
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    register_model("test_pool", PoolConfig, PoolModel)
    return "test_pool"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("contract") / "crops.h5")


# ------------------------------------------------------------------------- conformance
def _conforms(name: str, store, tmp_path) -> None:
    """Train a step, checkpoint, reload and embed the registered model ``name``."""
    run = train(store, tmp_path / "run", config=ONE_EPOCH, model_overrides={"model": name})
    model = load_model(run)
    assert isinstance(model, CytoModel) and isinstance(model.config, ModelConfig)
    assert model.config.model == name
    assert (run / "checkpoints" / "best.pt").is_file()
    out = embed(
        run,
        store,
        tmp_path / "emb.h5",
        logits=True,
        progress=False,
        num_workers=0,
        allow_degenerate=True,
    )
    layout = model.embed_layout(logits=True, local=False, global_only=False)
    with h5py.File(out, "r") as f:
        for key, (width, dtype) in layout.items():
            assert f[key].shape == (32, width) and f[key].dtype == dtype, key
        sizes = (int(f.attrs["num_embeddings_local"]), int(f.attrs["num_embeddings_global"]))
        assert sizes == model.config.codebook_sizes
        assert np.isfinite(f["global"][:]).all()
    # the loss is one ModelLoss of tensors, and the health check reads its arrays
    x = torch.randn(4, 4 if model.paired else 2, 32, 32)
    y = torch.tensor([0, 1, 2, 3])
    model.train()
    output = model(x)
    loss = model.loss(x, y, output, reconstruction_scale=1.0)
    assert isinstance(loss, ModelLoss) and loss.total.requires_grad
    assert {"loss", "task_loss"} <= set(loss.values())
    if not model.paired:
        encodings, indices = model.health_arrays(output)
        assert encodings.shape[0] == 4 and (indices is None or indices.shape[0] == 4)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_trains_checkpoints_reloads_and_embeds(name, store, tmp_path):
    _conforms(name, store, tmp_path)


def test_a_model_from_outside_cyto_needs_only_the_contract(with_pool_model, store, tmp_path):
    assert with_pool_model in list_models()
    _conforms(with_pool_model, store, tmp_path)


def test_the_cli_offers_registered_models_and_names_them_on_a_typo(
    with_pool_model, store, tmp_path, capsys
):
    run = tmp_path / "run"
    code = main(
        ["train", str(store), "-o", str(run), "--model", "test_pool", "--preset", "tiny",
         "--max-epochs", "1", "--batch-size", "8", "--workers", "0", "-q"]
    )  # fmt: skip
    assert code == 0 and load_model(run).config.model == "test_pool"
    with pytest.raises(SystemExit) as info:
        main(["train", str(store), "-o", str(tmp_path / "r2"), "--model", "test_poool"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown model 'test_poool'" in err and "test_pool" in err and "cytoself" in err


def test_registering_refuses_a_taken_name_or_a_config_of_another_name(with_pool_model):
    with pytest.raises(ValueError, match="registered already"):
        register_model("test_pool", PoolConfig, nn.Linear)
    with pytest.raises(ValueError, match="must save model='other'"):
        register_model("other", PoolConfig, PoolModel)
    register_model("test_pool", PoolConfig, PoolModel)  # the same classes again: fine


def test_a_config_of_no_registered_model_is_refused_by_name(store, tmp_path):
    @dataclass(frozen=True)
    class Stray(PoolConfig):
        pass

    with pytest.raises(TypeError, match="`model_config` must be one of"):
        train(store, tmp_path / "run", config=ONE_EPOCH, model_config=Stray())
    assert not (tmp_path / "run").exists()
    assert isinstance(build_model(registry.model_config("tiny")), CytoModel)
