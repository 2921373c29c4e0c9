"""PyTorch layer: encoders, vector quantizers, decoders, heads, model, training, embedding."""

from ._budget import EpochBudget, StepPlan, measure_train_speed, plan_steps
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
from ._embed import embed, export_h5ad, load_model
from ._encoders import (
    EncoderPair,
    create_encoder,
    list_encoders,
    register_encoder,
    resolve_encoder,
)
from ._inpainting import InpaintingLoss, InpaintingOutput, PairedInpainting, PairedInpaintingConfig
from ._interpret import ClusterAblation, CodeAblation, ablate_codes, ablate_feature_clusters
from ._model import Cytoself, CytoselfLoss, CytoselfOutput
from ._registry import MODELS
from ._train import (
    LR_SCHEDULES,
    NonFiniteLossError,
    PlateauState,
    TermWatch,
    TrainConfig,
    TrainingWarning,
    cosine_lr,
    evaluate,
    read_config_file,
    train,
    train_one_epoch,
)
from .quantize import (
    VectorQuantizer,
    VQOutput,
)

__all__: list[str] = [
    "CODEBOOKS",
    "LR_SCHEDULES",
    "MODELS",
    "SPLIT_NAMES",
    "BlockShuffleSampler",
    "ClusterAblation",
    "CodeAblation",
    "CropDataset",
    "Cytoself",
    "CytoselfConfig",
    "CytoselfLoss",
    "CytoselfOutput",
    "DihedralAugment",
    "EncoderPair",
    "EpochBudget",
    "InpaintingLoss",
    "InpaintingOutput",
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
    "cosine_lr",
    "create_encoder",
    "default_num_workers",
    "default_threads",
    "embed",
    "encode_labels",
    "evaluate",
    "export_h5ad",
    "list_encoders",
    "load_checkpoint",
    "load_model",
    "measure_train_speed",
    "plan_steps",
    "read_config_file",
    "register_encoder",
    "resolve_device",
    "resolve_encoder",
    "save_checkpoint",
    "split_crops",
    "train",
    "train_one_epoch",
]
