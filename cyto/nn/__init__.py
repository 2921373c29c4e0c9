"""PyTorch layer: encoders, vector quantizers, decoders, heads, model, training, embedding."""

from ._budget import EpochBudget, StepPlan, cosine_lr, measure_train_speed, plan_steps
from ._checkpoint import load_checkpoint, save_checkpoint
from ._config import CODEBOOKS, CytoselfConfig
from ._dataset import (
    SPLIT_NAMES,
    BlockShuffleSampler,
    CropDataset,
    DihedralAugment,
    PairedCropDataset,
    default_num_workers,
    default_threads,
    encode_labels,
    split_crops,
)
from ._distributed import resolve_device
from ._embed import embed, load_model
from ._encoders import (
    EncoderPair,
    create_encoder,
    list_encoders,
    register_encoder,
    resolve_encoder,
)
from ._inpainting import InpaintingLoss, InpaintingOutput, PairedInpainting, PairedInpaintingConfig
from ._interpret import ClusterAblation, CodeAblation, ablate_codes, ablate_feature_clusters
from ._loop import train_one_epoch, validation_metrics
from ._model import Cytoself, CytoselfLoss, CytoselfOutput
from ._monitors import PlateauState, TermWatch, TrainingWarning
from ._protocol import CytoModel, ModelConfig, ModelLoss
from ._registry import build_model, list_models, register_model
from ._train import resume_config, train
from ._train_config import LR_SCHEDULES, NonFiniteLossError, TrainConfig, read_config_file
from .quantize import (
    VectorQuantizer,
    VQOutput,
)

__all__: list[str] = [
    "CODEBOOKS",
    "LR_SCHEDULES",
    "SPLIT_NAMES",
    "BlockShuffleSampler",
    "ClusterAblation",
    "CodeAblation",
    "CropDataset",
    "CytoModel",
    "Cytoself",
    "CytoselfConfig",
    "CytoselfLoss",
    "CytoselfOutput",
    "DihedralAugment",
    "EncoderPair",
    "EpochBudget",
    "InpaintingLoss",
    "InpaintingOutput",
    "ModelConfig",
    "ModelLoss",
    "NonFiniteLossError",
    "PairedCropDataset",
    "PairedInpainting",
    "PairedInpaintingConfig",
    "PlateauState",
    "StepPlan",
    "TermWatch",
    "TrainConfig",
    "TrainingWarning",
    "VQOutput",
    "VectorQuantizer",
    "ablate_codes",
    "ablate_feature_clusters",
    "build_model",
    "cosine_lr",
    "create_encoder",
    "default_num_workers",
    "default_threads",
    "embed",
    "encode_labels",
    "list_encoders",
    "list_models",
    "load_checkpoint",
    "load_model",
    "measure_train_speed",
    "plan_steps",
    "read_config_file",
    "register_encoder",
    "register_model",
    "resolve_device",
    "resolve_encoder",
    "resume_config",
    "save_checkpoint",
    "split_crops",
    "train",
    "train_one_epoch",
    "validation_metrics",
]

# names of earlier releases, kept working with a warning
_RENAMED = {"evaluate": "validation_metrics"}


def __getattr__(name: str) -> object:
    import warnings

    if name in _RENAMED:
        warnings.warn(
            f"cyto.nn.{name} is renamed cyto.nn.{_RENAMED[name]}",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[_RENAMED[name]]
    if name == "export_h5ad":
        warnings.warn(
            "cyto.nn.export_h5ad is cyto.data.export_h5ad", DeprecationWarning, stacklevel=2
        )
        from cyto.data import export_h5ad

        return export_h5ad
    if name == "MODELS":
        warnings.warn(
            "cyto.nn.MODELS is replaced by cyto.nn.list_models()", DeprecationWarning, stacklevel=2
        )
        return list_models()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
