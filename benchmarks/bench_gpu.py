"""Training and embedding throughput of one model preset on one GPU, against the targets.

The CUDA counterpart of ``bench_model.py``, run by ``benchmarks/gpu_check.sh``. For the
``paper`` preset (100x100 two-channel crops) on one device it measures, side by side in
one process:

* ``train_eager`` / ``train_compiled``: images/s of the training step ``cyto train``
  runs (:func:`cyto.nn._loop._step_loss` + :func:`~cyto.nn._loop._optimizer_step`:
  forward, loss, backward, fused Adam) in bf16 autocast with channels-last inputs, eager
  and under ``torch.compile``; no host sync inside the timed steps;
* ``embed_global``: images/s of ``model.encode_global`` (what ``cyto embed`` computes per
  crop) in bf16 under ``torch.inference_mode`` at a large batch.

The targets (``benchmarks/gpu_targets.json``) are written beside the numbers with a
pass/fail each. ``--dry-run`` runs the same code on the CPU with the ``tiny`` preset and a
few steps (so CI keeps it working) and judges nothing. Needs only torch and numpy.

Run::

    python benchmarks/bench_gpu.py            # on a CUDA machine
    python benchmarks/bench_gpu.py --dry-run  # anywhere, seconds

Writes ``benchmarks/results/gpu.json`` and ``gpu.md`` (``gpu_dry_run.*`` for a dry run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TARGETS = HERE / "gpu_targets.json"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, steps: int, device: torch.device) -> tuple[float, float, torch.Tensor]:
    """Seconds of 3 untimed warm-up calls (codebook initialisation, autotuning,
    compilation), seconds of ``steps`` timed calls, and the last call's result."""
    start = time.perf_counter()
    for _ in range(3):
        fn()
    _sync(device)
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        out = fn()
    _sync(device)
    return warmup, time.perf_counter() - start, out


def _batch(config, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    size = (batch, config.in_channels, config.image_size, config.image_size)
    x = torch.rand(size, generator=g).to(device)
    y = torch.randint(0, config.num_classes, (batch,), generator=g).to(device)
    return x, y


def train_rate(config, device, *, batch: int, steps: int, compiled: bool, amp: str) -> dict:
    """Images/s of the training step (warm-up steps, incl. compilation, not timed)."""
    from cyto.nn import Cytoself
    from cyto.nn._loop import _optimizer_step, _step_loss

    torch.manual_seed(0)
    model = Cytoself(config).to(device).train()
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=4e-4, fused=device.type == "cuda")
    x, y = _batch(config, batch, device)
    step_model = torch.compile(model) if compiled else model
    kwargs = dict(device=device, amp=amp, channels_last=channels_last, reconstruction_scale=1.0)

    def step() -> torch.Tensor:
        _, loss, _, values = _step_loss(step_model, x, y, **kwargs)
        _optimizer_step(step_model, loss, optimizer, None, 0.0)
        return values

    warmup, seconds, values = _timed(step, steps, device)
    return {
        "images_per_s": batch * steps / seconds,
        "batch": batch,
        "steps": steps,
        "warmup_s": warmup,
        "loss_finite": bool(torch.isfinite(values[0]).item()),
        "peak_memory_gib": (
            torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        ),
    }


def embed_rate(config, device, *, batch: int, steps: int, amp: str) -> dict:
    """Images/s of ``encode_global`` in inference mode."""
    from cyto.nn import Cytoself

    torch.manual_seed(0)
    model = Cytoself(config).to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    x, _ = _batch(config, batch, device)
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    autocast = torch.autocast(device.type, dtype=dtype, enabled=amp != "off")

    def run() -> torch.Tensor:
        with torch.inference_mode(), autocast:
            return model.encode_global(x)[0]

    _, seconds, out = _timed(run, steps, device)
    return {
        "images_per_s": batch * steps / seconds,
        "batch": batch,
        "steps": steps,
        "finite": bool(torch.isfinite(out.float()).all().item()),
    }


def judge(results: dict, targets: dict) -> dict:
    """Pass/fail of each target against the measured numbers."""
    best_train = max(results[k]["images_per_s"] for k in ("train_eager", "train_compiled"))
    measured = {
        "train_images_per_s": best_train,
        "embed_images_per_s": results["embed_global"]["images_per_s"],
    }
    return {
        name: {"target": target, "measured": measured[name], "met": measured[name] >= target}
        for name, target in targets["paper_bf16_one_gpu"].items()
    }


def _markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"# GPU check: `{result['preset']}` preset on {m['device_name']}",
        "",
        f"Written by `benchmarks/bench_gpu.py`{' --dry-run' if result['dry_run'] else ''} "
        f"(run by `benchmarks/gpu_check.sh`). torch {m['torch']}, CUDA {m['cuda']}, "
        f"Python {m['python']}, {m['cpus']} CPUs. AMP: {result['amp']}; channels-last on CUDA.",
        "",
        "| measure | images/s | batch | steps | notes |",
        "|---|---|---|---|---|",
    ]
    for key in ("train_eager", "train_compiled", "embed_global"):
        r = result[key]
        note = f"warm-up {r['warmup_s']:.1f} s" if "warmup_s" in r else ""
        if r.get("peak_memory_gib") is not None:
            note += f", peak {r['peak_memory_gib']:.1f} GiB"
        if r.get("skipped"):
            note = f"{r['skipped']}: the eager numbers repeated"
        lines.append(f"| {key} | {r['images_per_s']:,.0f} | {r['batch']} | {r['steps']} | {note} |")
    if result.get("verdict"):
        lines += ["", "| target | wanted | measured | met |", "|---|---|---|---|"]
        for name, v in result["verdict"].items():
            met = "yes" if v["met"] else "NO"
            lines.append(f"| {name} | ≥ {v['target']:,} | {v['measured']:,.0f} | {met} |")
    else:
        lines += ["", "Dry run (CPU, tiny preset): the code paths ran; no target is judged."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny preset, a few steps")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch", type=int, default=256, help="training batch")
    parser.add_argument("--embed-batch", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--amp", choices=["bf16", "fp16", "off"], default="bf16")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled step")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE.parent))
    from cyto.nn import CytoselfConfig

    if args.dry_run:
        device, preset, batch, embed_batch, steps = torch.device("cpu"), "tiny", 4, 8, 2
        amp = "off"
    elif not torch.cuda.is_available():
        print("bench_gpu: no CUDA device (use --dry-run to exercise it on the CPU)")
        return 2
    else:
        device, preset, batch, embed_batch, steps = (
            torch.device("cuda"),
            args.preset,
            args.batch,
            args.embed_batch,
            args.steps,
        )
        amp = args.amp
        torch.backends.cudnn.benchmark = True
    config = CytoselfConfig.preset(preset, in_channels=2, num_classes=1311)
    result: dict = {
        "preset": preset,
        "dry_run": args.dry_run,
        "amp": amp,
        "machine": {
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
    }
    result["train_eager"] = train_rate(
        config, device, batch=batch, steps=steps, compiled=False, amp=amp
    )
    print("train eager", json.dumps(result["train_eager"]), flush=True)
    if args.no_compile or args.dry_run:
        # inductor needs a C++ toolchain and minutes on a CPU; the dry run keeps it eager
        result["train_compiled"] = dict(result["train_eager"], skipped="compile not run")
    else:
        result["train_compiled"] = train_rate(
            config, device, batch=batch, steps=steps, compiled=True, amp=amp
        )
    print("train compiled", json.dumps(result["train_compiled"]), flush=True)
    result["embed_global"] = embed_rate(config, device, batch=embed_batch, steps=steps, amp=amp)
    print("embed", json.dumps(result["embed_global"]), flush=True)
    if not args.dry_run:
        result["verdict"] = judge(result, json.loads(TARGETS.read_text()))
    out = args.out or RESULTS / ("gpu_dry_run" if args.dry_run else "gpu")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(_markdown(result))
    print(_markdown(result))
    return 0 if args.dry_run or all(v["met"] for v in result["verdict"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
