"""DDP for real: 2 CPU processes on gloo, launched with torchrun like on a cluster."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cyto.nn import load_checkpoint
from cyto.nn._distributed import DistInfo, replica_divergence

from .helpers import make_store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_gloo_ranks_agree(tmp_path):
    store = make_store(tmp_path / "crops.h5")
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "cyto", "train", str(store), "-o", str(run), "--preset", "tiny",
        "--batch-size", "4", "--max-epochs", "2", "--workers", "0", "--device", "cpu",
        "--log-every", "1", "--quiet",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    steps = [r["step"] for r in records if r["kind"] == "step"]
    # 24 training crops sharded over 2 ranks, batches of 4: 3 steps per epoch, logged once
    assert [r["epoch"] for r in epochs] == [0, 1]
    assert steps == list(range(1, 7))
    for r in epochs:
        assert r["replica_max_abs_diff"] == 0.0  # every parameter and buffer identical
        assert r["codebook_max_abs_diff"] == 0.0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 2
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert len(last["rng"]) == 2  # both ranks' RNG states, for an exact resume
    assert not list(run.glob("**/*.tmp"))


def _divergence_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        module = torch.nn.Linear(3, 2)
        info = DistInfo(rank=rank, world_size=2)
        same = replica_divergence(module, info)
        with torch.no_grad():
            if rank == 1:
                module.bias[0] += 0.5
        diff = replica_divergence(module, info)
        if rank == 0:
            with open(out, "w") as fh:
                json.dump({"same": same, "diff": diff}, fh)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_replica_divergence_detects_a_drifted_rank(tmp_path):
    out = tmp_path / "div.json"
    with warnings.catch_warnings():  # Python >= 3.12 warns about fork in threaded processes
        warnings.simplefilter("ignore", DeprecationWarning)
        mp.start_processes(
            _divergence_worker, args=(_free_port(), str(out)), nprocs=2, start_method="fork"
        )
    result = json.loads(out.read_text())
    assert result["same"] == {"weight": 0.0, "bias": 0.0}
    assert result["diff"]["weight"] == 0.0
    assert result["diff"]["bias"] == pytest.approx(0.5)
