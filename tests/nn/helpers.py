"""Shared helpers of the nn tests: a small crop store, a fast training config, checks."""

from __future__ import annotations

import json

import numpy as np
import torch

from cyto.data import write_crop_store
from cyto.nn import TrainConfig, load_checkpoint

# 3 train steps of 8 crops per epoch on the "tiny" preset: seconds per run on 2 cores
# A few steps of the tiny model give degenerate encodings; these tests are about the run
# mechanics, so every epoch competes for the best checkpoint (test_collapse.py tests the
# default, skip_degenerate=True).
FAST = TrainConfig(
    preset="tiny",
    batch_size=8,
    max_epochs=3,
    num_workers=0,
    log_every=1,
    progress=False,
    skip_degenerate=False,
)


def make_store(path, *, n_per_protein=8, proteins=4, size=32, seed=0, nan_row=None):
    """A small store whose proteins differ by a bright band at a protein-specific row."""
    rng = np.random.default_rng(seed)
    n = n_per_protein * proteins
    prot = np.repeat([f"P{k}" for k in range(proteins)], n_per_protein)
    fov = np.array([f"{p}-f{i % n_per_protein}" for i, p in enumerate(prot)])
    crops = rng.normal(0, 0.3, size=(n, 2, size, size)).astype(np.float32)
    band = size // proteins
    for k in range(proteins):
        crops[prot == f"P{k}", 0, k * band : (k + 1) * band] += 2.0
    if nan_row is not None:
        crops[nan_row, 0, 3, 3] = np.nan
    return write_crop_store(path, crops.astype(np.float16), prot, fov_ids=fov)


def epochs(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "epoch"]


def assert_same_weights(a, b):
    """The model weights of two checkpoints agree (to float32 rounding)."""
    sa, sb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-6, msg=k)
