"""What a run trains on: the store's labels, split and pixel variance, the model
config fitted to it, and the data loaders."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cyto._paths import relative_to
from cyto._provenance import package_versions

from ._dataset import (
    SPLIT_NAMES,
    BlockShuffleSampler,
    CropDataset,
    DihedralAugment,
    PairedCropDataset,
    check_finite_crops,
    collate_crops,
    default_num_workers,
    encode_labels,
    split_crops,
)
from ._distributed import DistInfo
from ._registry import saved_config
from ._train_config import TrainConfig

__all__: list[str] = []  # internal to cyto.nn.train


@dataclass
class _RunData:
    store_path: Path
    n: int
    channels: tuple[str, ...]
    crop_size: int
    labels: np.ndarray
    classes: np.ndarray
    split: np.ndarray
    reconstruction_scale: float
    fingerprint: dict[str, str] = field(default_factory=dict)
    fields: np.ndarray | None = None  # field of view of every crop (pair sampling)

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.store_path),
            "n": self.n,
            "channels": list(self.channels),
            "crop_size": self.crop_size,
            "fingerprint": dict(self.fingerprint),
        }


# Crops read (evenly spaced) for a store's pixel fingerprint.
def _open_store(store_path: Path) -> Any:
    from cyto.data import CropStore

    try:
        return CropStore(store_path)
    except FileNotFoundError:
        raise FileNotFoundError(f"crop store not found: {store_path}") from None


def _pixel_variance(store: Any, rows: np.ndarray, *, samples: int, seed: int) -> float:
    rng = np.random.default_rng([seed, 1])
    if rows.size > samples:
        rows = np.sort(rng.choice(rows, size=samples, replace=False))
    total = total_sq = 0.0
    count = 0
    for lo in range(0, rows.size, 256):
        block = store.read(rows[lo : lo + 256]).astype(np.float64)
        check_finite_crops(block, rows[lo : lo + 256], store.path, "training would diverge")
        total += block.sum()
        total_sq += np.square(block).sum()
        count += block.size
    mean = total / max(count, 1)
    var = total_sq / max(count, 1) - mean * mean
    if not var > 0:
        raise ValueError(
            f"training crops of {store.path} have zero pixel variance; nothing to learn"
        )
    return float(var)


def _prepare_data(store_path: Path, config: TrainConfig) -> _RunData:
    with _open_store(store_path) as store:
        n = len(store)
        if n < 2:
            raise ValueError(f"crop store {store_path} holds {n} crops; need at least 2 to train")
        ids = store.labels(config.target)
        labels, classes = encode_labels(ids)
        split = split_crops(
            ids,
            store.labels(config.split_by),
            fractions=config.split,
            seed=config.seed,
            group_by_fov=config.group_by_fov,
        )
        train_rows = np.flatnonzero(split == 0)
        if train_rows.size < config.batch_size:
            raise ValueError(
                f"the training split of {store_path} has {train_rows.size} crops, fewer than "
                f"`batch_size` ({config.batch_size})"
            )
        # read one crop from the far end: catches stores truncated after writing
        store.read([n - 1])
        scale = _pixel_variance(
            store, train_rows, samples=config.variance_samples, seed=config.seed
        )
        return _RunData(
            store_path=store_path,
            n=n,
            channels=tuple(store.channels),
            crop_size=int(store.crop_size),
            labels=labels,
            classes=classes,
            split=split,
            reconstruction_scale=scale,
            fingerprint=store.fingerprint(),
            fields=np.asarray(store.fov_ids).astype(str),
        )


def _model_config(
    data: _RunData, config: TrainConfig, model_config: Any, overrides: Mapping[str, Any]
) -> Any:
    from ._registry import check_config
    from ._registry import model_config as registered_config

    derived = {
        "in_channels": len(data.channels),
        "num_classes": int(data.classes.size),
        "image_size": data.crop_size,
    }
    clash = sorted(set(overrides) & set(derived))
    if clash:
        raise ValueError(f"model option(s) {clash} are taken from the crop store and cannot be set")
    if model_config is None:
        model_config = registered_config(config.preset, overrides)
    return check_config(model_config).for_data(**derived)


def _check_store_matches(data: _RunData, saved: Mapping[str, Any], classes: list[str]) -> None:
    want = {k: saved[k] for k in ("n", "channels", "crop_size")}
    got = {k: data.describe()[k] for k in want}
    if got != want or list(data.classes) != list(classes):
        raise ValueError(
            f"crop store {data.store_path} does not match the run: run was trained on "
            f"{want} with {len(classes)} proteins, the store has {got} with "
            f"{data.classes.size} proteins"
        )
    # runs saved before fingerprints existed are checked by shape only
    differ = [
        {"ids": "protein or field ids", "pixels": "pixels"}[k]
        for k, v in saved.get("fingerprint", {}).items()
        if data.fingerprint.get(k) != v
    ]
    if differ:
        raise ValueError(
            f"crop store {data.store_path} is not the store the run was trained on: same "
            f"shape, but its {' and '.join(differ)} differ (run trained on "
            f"{saved.get('path')}); resume with that store"
        )


def _make_loaders(
    data: _RunData, config: TrainConfig, info: DistInfo, *, skip: int = 0, paired: bool = False
) -> tuple[Any, Any, CropDataset, BlockShuffleSampler, torch.Generator]:
    """Training and validation loaders; ``paired``: each item a pair of crops of one
    protein (:class:`PairedCropDataset`, for paired cell inpainting)."""
    from torch.utils.data import DataLoader

    aug = DihedralAugment(config.seed) if config.augment else None
    dataset: Any = CropDataset
    extra: dict[str, Any] = {}
    if paired:
        dataset, extra = PairedCropDataset, {"fields": data.fields, "seed": config.seed}
    train_ds = dataset(
        data.store_path, np.flatnonzero(data.split == 0), labels=data.labels, augment=aug, **extra
    )
    val_ds = dataset(data.store_path, np.flatnonzero(data.split == 1), labels=data.labels, **extra)
    sampler = BlockShuffleSampler(
        train_ds,
        num_replicas=info.world_size,
        rank=info.rank,
        seed=config.seed,
        block_size=config.shuffle_block,
        skip=skip,
    )
    val_sampler = BlockShuffleSampler(
        val_ds, num_replicas=info.world_size, rank=info.rank, shuffle=False, even=False
    )
    generator = torch.Generator()
    generator.manual_seed(config.seed + 7919 * info.rank)
    workers = config.num_workers
    if workers < 0:
        workers = default_num_workers(
            info.device, processes=int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        )
    common = dict(
        num_workers=workers,
        pin_memory=info.device.type == "cuda",
        generator=generator,
        collate_fn=collate_crops,
    )
    if workers > 0:
        common["prefetch_factor"] = 4
    train_loader = DataLoader(
        train_ds, batch_size=config.batch_size, sampler=sampler, drop_last=True, **common
    )
    val_loader = DataLoader(val_ds, batch_size=config.batch_size, sampler=val_sampler, **common)
    return train_loader, val_loader, train_ds, sampler, generator


def _setup_record(run_dir: Path, data: _RunData, config: TrainConfig, model_config: Any) -> dict:
    """What ``config.json`` holds: both configs, the store (also relative to the run, so
    a moved folder still resumes), the classes and the package versions."""
    import cyto

    return {
        "train": config.to_dict(),
        "model": saved_config(model_config),
        "store": {**data.describe(), "relative": relative_to(data.store_path, run_dir)},
        "reconstruction_scale": data.reconstruction_scale,
        "classes": [str(c) for c in data.classes],
        "split_names": list(SPLIT_NAMES),
        "cyto_version": cyto.__version__,
        "torch_version": torch.__version__,
        "versions": package_versions(),
    }
