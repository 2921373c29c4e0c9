"""Training throughput of Lu et al.'s paired cell inpainting next to cytoself, same run.

For each pair (preset) of models on 100×100 crops of 2 channels, batch 32:

* training images/s: forward + loss + backward + Adam step, model in train mode (for
  paired inpainting an "image" is a pair: the source and the target crop);
* feature images/s: what ``cyto embed`` computes per crop (cytoself: ``encode_global``;
  paired inpainting: the source encoder's max-pooled conv3-5), eval mode under
  ``torch.inference_mode``;
* forward FLOPs per image (``torch.utils.flop_counter``; a multiply-add is 2 FLOPs) and
  parameters.

The models alternate in every repeat (ratios side by side in one run); the median of
the repeats is reported. Run on an otherwise idle machine::

    python benchmarks/bench_inpainting.py [--presets small paper] [--repeats 5]

Writes ``benchmarks/results/inpainting.json`` and ``inpainting.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from _machine import machine_info
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cyto.nn import Cytoself, CytoselfConfig, PairedInpainting, PairedInpaintingConfig

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 32


def models(preset: str) -> dict[str, torch.nn.Module]:
    return {
        "cytoself": Cytoself(CytoselfConfig.preset(preset, in_channels=2, num_classes=60)),
        "paired inpainting": PairedInpainting(PairedInpaintingConfig.preset(preset)),
    }


def batch_for(name: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    c = 4 if name == "paired inpainting" else 2
    return torch.rand(BATCH, c, size, size), torch.randint(0, 60, (BATCH,))


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x, y) -> None:
    out = model(x)
    loss = model.loss(x, y, out, reconstruction_scale=1.0)
    opt.zero_grad(set_to_none=True)
    loss.total.backward()
    opt.step()


def features(model: torch.nn.Module, x: torch.Tensor) -> None:
    if isinstance(model, PairedInpainting):
        model.features(x[:, :2])
    else:
        model.encode_global(x)


def flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x[:1])
    model.train()
    return float(sum(counter.get_flop_counts()["Global"].values()))


def measure(preset: str, repeats: int) -> dict[str, dict[str, float]]:
    ms = models(preset)
    size = next(iter(ms.values())).config.image_size
    data = {n: batch_for(n, size) for n in ms}
    opts = {n: torch.optim.Adam(m.parameters(), lr=1e-4) for n, m in ms.items()}
    train_t: dict[str, list[float]] = {n: [] for n in ms}
    feat_t: dict[str, list[float]] = {n: [] for n in ms}
    for n, m in ms.items():  # warm-up
        m.train()
        train_step(m, opts[n], *data[n])
    for _ in range(repeats):
        for n, m in ms.items():  # alternate: both see the same machine state
            m.train()
            t = time.perf_counter()
            train_step(m, opts[n], *data[n])
            train_t[n].append(time.perf_counter() - t)
            m.eval()
            with torch.inference_mode():
                t = time.perf_counter()
                features(m, data[n][0])
                feat_t[n].append(time.perf_counter() - t)
    return {
        n: {
            "train_images_per_s": round(BATCH / statistics.median(train_t[n]), 1),
            "feature_images_per_s": round(BATCH / statistics.median(feat_t[n]), 1),
            "gflops_forward_per_image": round(flops(m, data[n][0]) / 1e9, 3),
            "parameters_millions": round(sum(p.numel() for p in m.parameters()) / 1e6, 2),
        }
        for n, m in ms.items()
    }


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [
        "# Paired cell inpainting (Lu et al. 2019) next to cytoself: throughput",
        "",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, torch {m.get('torch', '?')}, "
        f"{res['threads']} threads; batch {BATCH}, 100×100 crops, 2 channels; median of "
        f"{res['repeats']} alternating repeats. Written by `benchmarks/bench_inpainting.py`.",
        "",
        "| preset | model | training img/s | feature img/s | forward GFLOP/img | parameters (M) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for preset, per in res["presets"].items():
        for name, r in per.items():
            lines.append(
                f"| {preset} | {name} | {r['train_images_per_s']} | "
                f"{r['feature_images_per_s']} | {r['gflops_forward_per_image']} | "
                f"{r['parameters_millions']} |"
            )
    for preset, per in res["presets"].items():
        a, b = per["paired inpainting"], per["cytoself"]
        lines.append(
            f"\n{preset}: paired inpainting trains at "
            f"{a['train_images_per_s'] / b['train_images_per_s']:.2f}× cytoself's speed "
            f"(pairs/s vs crops/s) and extracts features at "
            f"{a['feature_images_per_s'] / b['feature_images_per_s']:.2f}×."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["small", "paper"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    res = {
        "machine": machine_info(packages=("numpy", "torch"), torch=True, load=True),
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "presets": {preset: measure(preset, args.repeats) for preset in args.presets},
    }
    md = markdown(res)
    print(md)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "inpainting.json").write_text(json.dumps(res, indent=2) + "\n")
        (RESULTS / "inpainting.md").write_text(md)


if __name__ == "__main__":
    main()
