"""Model benchmark: parameters, FLOPs per image, training and global-encoding throughput.

Run under the shared lock so benchmarks do not overlap::

    flock /tmp/cyto-bench.lock python benchmarks/bench_model.py [--presets paper small]

For each preset it reports the parameter count and forward FLOPs per image of every part
(``torch.utils.flop_counter``; a multiply-add counts as 2 FLOPs), then at batch 32:

- training images/s: forward + loss + backward + Adam step (fused Adam, denormals
  flushed), model in train mode;
- global-encoding images/s: ``model.encode_global`` (encoders + VQ2 only) in eval mode
  under ``torch.inference_mode``, which is what embedding extraction needs.

Wall-clock numbers use all torch threads. Because the machine may be shared, it also
reports single-thread numbers timed with ``time.thread_time`` (CPU time of the timing
thread), which other processes disturb much less. Results go to
``benchmarks/results/model.json`` and ``model.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from _machine import machine_info
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cyto.nn import Cytoself, CytoselfConfig

PARTS = ("encoder1", "encoder2", "vq_local", "vq_global", "decoder1", "decoder2", "fc1", "fc2")


def flops_per_image(model: Cytoself) -> dict[str, float]:
    cfg = model.config
    x = torch.rand(1, cfg.in_channels, cfg.image_size, cfg.image_size)
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    counts = counter.get_flop_counts()
    out = {}
    for part in PARTS:
        key = f"Cytoself.{part}"
        if key in counts:
            out[part] = float(sum(counts[key].values()))
    out["total"] = float(sum(counts["Global"].values()))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.encode_global(x)
    out["encode_global"] = float(sum(counter.get_flop_counts()["Global"].values()))
    return out


def _time(fn, repeats: int, clock) -> list[float]:
    times = []
    for _ in range(repeats):
        t = clock()
        fn()
        times.append(clock() - t)
    return times


def throughput(model: Cytoself, batch: int, repeats: int, clock) -> dict[str, float]:
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g)
    y = torch.randint(0, cfg.num_classes, (batch,), generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)

    def train_step() -> None:
        out = model(x)
        loss = model.loss(x, y, out)
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        opt.step()

    def extract() -> None:
        with torch.inference_mode():
            model.encode_global(x)

    model.train()
    _time(train_step, 2, clock)  # warm-up: oneDNN primitives, Adam state
    train = _time(train_step, repeats, clock)
    model.eval()
    _time(extract, 2, clock)
    ext = _time(extract, repeats * 3, clock)
    return {
        "train_images_per_s": batch / statistics.median(train),
        "train_images_per_s_best": batch / min(train),
        "global_images_per_s": batch / statistics.median(ext),
        "global_images_per_s_best": batch / min(ext),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["paper", "small", "tiny"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "model"))
    args = parser.parse_args(argv)

    torch.set_flush_denormal(True)
    threads = torch.get_num_threads()
    info = machine_info(torch=True)
    info["load_average_start"] = os.getloadavg()
    results = {"machine": info, "batch": args.batch, "presets": {}}
    for name in args.presets:
        torch.manual_seed(0)
        cfg = CytoselfConfig.preset(name)
        model = Cytoself(cfg)
        entry = {
            "config": cfg.to_dict(),
            "local_shape": model.local_shape,
            "global_shape": model.global_shape,
            "parameters": model.num_parameters(),
            "flops_per_image": flops_per_image(model),
        }
        torch.set_num_threads(threads)
        entry["wall"] = throughput(model, args.batch, args.repeats, time.perf_counter)
        entry["wall"]["threads"] = threads
        torch.set_num_threads(1)
        entry["single_thread_cpu"] = throughput(model, args.batch, args.repeats, time.thread_time)
        torch.set_num_threads(threads)
        results["presets"][name] = entry
        print(name, json.dumps({k: entry[k] for k in ("wall", "single_thread_cpu")}, indent=1))
    info["load_average_end"] = os.getloadavg()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, out.with_suffix(".json"))
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(markdown(results))
    os.replace(tmp, out.with_suffix(".md"))
    print(markdown(results))
    return 0


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# Model benchmark (`benchmarks/bench_model.py`)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}; "
        f"Python {m['python']}, NumPy {m['numpy']}, torch {m['torch']}; "
        f"load average {m['load_average_start'][0]:.1f} at start, "
        f"{m['load_average_end'][0]:.1f} at end (the machine may have been shared).",
        "",
        f"Batch {results['batch']}. FLOPs: forward, per image, multiply-add = 2 FLOPs.",
        "",
        "| preset | params (M) | encoders GFLOP | decoders GFLOP | total GFLOP "
        "| train img/s (wall) | global img/s (wall) | train img/s (1 thread) "
        "| global img/s (1 thread) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in results["presets"].items():
        f = e["flops_per_image"]
        enc = (f.get("encoder1", 0) + f.get("encoder2", 0)) / 1e9
        dec = (f.get("decoder1", 0) + f.get("decoder2", 0)) / 1e9
        lines.append(
            f"| {name} | {e['parameters']['total'] / 1e6:.2f} | {enc:.3f} | {dec:.3f} "
            f"| {f['total'] / 1e9:.3f} | {e['wall']['train_images_per_s']:.1f} "
            f"| {e['wall']['global_images_per_s']:.1f} "
            f"| {e['single_thread_cpu']['train_images_per_s']:.1f} "
            f"| {e['single_thread_cpu']['global_images_per_s']:.1f} |"
        )
    lines += ["", "Per part (parameters / forward GFLOP per image):", ""]
    for name, e in results["presets"].items():
        parts = ", ".join(
            f"{p} {e['parameters'][p] / 1e6:.3f} M / {e['flops_per_image'].get(p, 0) / 1e9:.3f}"
            for p in PARTS
            if p in e["parameters"]
        )
        lines.append(f"- **{name}**: {parts}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
