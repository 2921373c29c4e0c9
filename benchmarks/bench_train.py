"""Training and embedding throughput of the cyto.nn pipeline (CPU here, CUDA when present).

For each model preset ("paper", "small") and device this measures, side by side:

* ``train_raw``: images/s of bare training steps (forward, loss, backward, Adam) on a
  batch already in memory: the model's own speed;
* ``train_loop``: images/s of :func:`cyto.nn.train_one_epoch` reading the batches
  from an HDF5 crop store through :class:`cyto.nn.CropDataset` (augmentation on,
  DataLoader workers): the pipeline the ``cyto train`` command runs. The ratio
  ``loop / raw`` is the loop's overhead;
* ``encode_global_raw``: images/s of ``model.encode_global`` on in-memory batches;
* ``embed_global_only`` / ``embed_full``: images/s of :func:`cyto.nn.embed` end to
  end (store reading, model, histograms, HDF5 writing, model loading included);
* peak resident memory of ``embed`` for N and 16N crops (separate processes), to
  show that streaming keeps memory flat.

Run under the shared lock so benchmarks do not overlap::

    flock /tmp/cyto-bench.lock python benchmarks/bench_train.py

Writes ``benchmarks/results/train.json`` and ``train.md``. Other processes may share
the machine (see the recorded load averages); compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from _machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results"


def make_store(path: Path, n: int, size: int, num_classes: int = 16) -> Path:
    from cyto.data import write_crop_store

    rng = np.random.default_rng(0)
    crops = rng.normal(size=(n, 2, size, size)).astype(np.float16)
    prot = np.array([f"P{i % num_classes:02d}" for i in range(n)])
    fov = np.array([f"{p}-{i // num_classes % 8}" for i, p in enumerate(prot)])
    return write_crop_store(path, crops, prot, fov_ids=fov)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_train_raw(model, cfg, device, batch: int, steps: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=4e-4)
    x = torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size, device=device)
    y = torch.randint(0, cfg.num_classes, (batch,), device=device)
    model.train()
    amp = device.type == "cuda"
    for i in range(steps + 1):
        if i == 1:
            _sync(device)
            t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            out = model(x)
            loss = model.loss(x, y, out, reconstruction_scale=1.0)
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        opt.step()
    _sync(device)
    return steps * batch / (time.perf_counter() - t)


def bench_train_loop(model, store: Path, device, batch: int, steps: int, workers: int) -> float:
    from torch.utils.data import DataLoader

    from cyto.nn import BlockShuffleSampler, CropDataset, DihedralAugment, train_one_epoch

    ds = CropDataset(store, np.arange(batch * (steps + 1)), augment=DihedralAugment(0))
    ds.labels = ds.labels % model.config.num_classes
    opt = torch.optim.Adam(model.parameters(), lr=4e-4)
    amp = "bf16" if device.type == "cuda" else "off"

    def loader(n):
        sub = CropDataset(store, np.arange(batch * n), augment=DihedralAugment(0))
        return DataLoader(
            sub,
            batch_size=batch,
            sampler=BlockShuffleSampler(sub, seed=0),
            drop_last=True,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            prefetch_factor=4 if workers else None,
        )

    kw = dict(device=device, reconstruction_scale=1.0, amp=amp, log_every=10)
    kw["channels_last"] = device.type == "cuda"
    train_one_epoch(model, loader(1), opt, **kw)  # warm-up
    _sync(device)
    t = time.perf_counter()
    train_one_epoch(model, loader(steps), opt, **kw)
    _sync(device)
    return steps * batch / (time.perf_counter() - t)


def bench_encode_raw(model, cfg, device, batch: int, steps: int) -> float:
    model.eval()
    x = torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size, device=device)
    with (
        torch.inference_mode(),
        torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda"),
    ):
        for i in range(steps + 1):
            if i == 1:
                _sync(device)
                t = time.perf_counter()
            model.encode_global(x)
        _sync(device)
    return steps * batch / (time.perf_counter() - t)


def make_run(model, cfg, root: Path) -> Path:
    from cyto.nn._checkpoint import CHECKPOINT_FORMAT, save_checkpoint

    run = root / f"run-{cfg.image_size}-{cfg.embedding_dim}"
    save_checkpoint(
        {
            "format": CHECKPOINT_FORMAT,
            "model": {k: v.cpu() for k, v in model.state_dict().items()},
            "model_config": cfg.to_dict(),
            "classes": [f"P{i:02d}" for i in range(cfg.num_classes)],
            "step": 0,
        },
        run / "checkpoints" / "best.pt",
    )
    return run


def bench_embed(run: Path, store: Path, out: Path, device, batch: int, **kw) -> float:
    from cyto.data import CropStore
    from cyto.nn import embed

    with CropStore(store) as s:
        n = len(s)
    t = time.perf_counter()
    # throughput only: a short benchmark run may well give degenerate encodings
    embed(
        run, store, out, batch_size=batch, device=str(device), progress=False,
        allow_degenerate=True, **kw,
    )  # fmt: skip
    return n / (time.perf_counter() - t)


# VmHWM (peak RSS of this address space; reset by exec, unlike ru_maxrss, which a
# child inherits from the process that forked it), in kB
_PEAK = """
import sys
from cyto.nn import embed
embed(sys.argv[1], sys.argv[2], sys.argv[3], batch_size=int(sys.argv[4]), device="cpu",
      num_workers=0, progress=False, allow_degenerate=True)
status = open("/proc/self/status").read().splitlines()
print(next(int(x.split()[1]) for x in status if x.startswith("VmHWM")))
"""


def peak_rss_mib(run: Path, store: Path, out: Path, batch: int) -> float:
    res = subprocess.run(
        [sys.executable, "-c", _PEAK, str(run), str(store), str(out), str(batch)],
        capture_output=True,
        text=True,
    )
    if res.returncode:
        raise RuntimeError(f"embed subprocess failed:\n{res.stderr[-2000:]}")
    return int(res.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    from cyto.nn._config import CytoselfConfig
    from cyto.nn._model import Cytoself

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="timed training steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers")
    parser.add_argument("--presets", default="paper,small")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats (best kept)")
    parser.add_argument("--embed-crops", type=int, default=1024, help="crops in the store")
    parser.add_argument("--out", type=Path, default=RESULTS / "train.json")
    parser.add_argument(
        "--devices", default="cpu,cuda", help="comma-separated; cuda is skipped without one"
    )
    args = parser.parse_args()

    devices = [torch.device(d) for d in args.devices.split(",") if d != "cuda"]
    if "cuda" in args.devices.split(","):
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
        else:
            print("CUDA not available: CUDA benchmarks skipped")
    batch = args.batch_size
    results: dict = {
        "machine": machine_info(torch=True),
        "load_average_start": os.getloadavg(),
        "batch_size": batch,
        "workers": args.workers,
        "steps": args.steps,
        "repeats": args.repeats,
        "note": (
            "2-core machine shared with other jobs; absolute numbers move with the load "
            "average, ratios measured back to back in one run are more reliable"
        ),
        "results": [],
        "cuda": "skipped: no CUDA device" if not torch.cuda.is_available() else "measured",
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for preset in args.presets.split(","):
            cfg = CytoselfConfig.preset(preset, in_channels=2, num_classes=16)
            n_embed = args.embed_crops
            store = make_store(
                root / f"{preset}.h5", max(n_embed, batch * (args.steps + 1)), cfg.image_size
            )
            for device in devices:
                torch.manual_seed(0)
                model = Cytoself(cfg).to(device)
                if device.type == "cuda":
                    model = model.to(memory_format=torch.channels_last)
                row: dict = {"preset": preset, "device": str(device), "embed_crops": n_embed}
                run = make_run(model, cfg, root)
                benches = {
                    "train_raw_img_s": partial(
                        bench_train_raw, model, cfg, device, batch, args.steps
                    ),
                    "train_loop_img_s": partial(
                        bench_train_loop, model, store, device, batch, args.steps, 0
                    ),
                    "train_loop_workers_img_s": partial(
                        bench_train_loop, model, store, device, batch, args.steps, args.workers
                    ),
                    "encode_global_raw_img_s": partial(
                        bench_encode_raw, model, cfg, device, batch, 4 * args.steps
                    ),
                    "embed_global_only_img_s": partial(
                        bench_embed, run, store, root / "g.h5", device, batch,
                        global_only=True,
                    ),
                    "embed_full_img_s": partial(
                        bench_embed, run, store, root / "f.h5", device, batch,
                    ),
                }  # fmt: skip
                # interleaved repeats, best of each: on a shared machine other jobs can
                # only slow a measurement down
                samples: dict[str, list[float]] = {k: [] for k in benches}
                for _ in range(args.repeats):
                    for key, fn in benches.items():
                        samples[key].append(fn())
                for key, values in samples.items():
                    row[key] = max(values)
                    row[key.replace("_img_s", "_all")] = [round(v, 2) for v in values]
                row["loop_over_raw"] = row["train_loop_img_s"] / row["train_raw_img_s"]
                row["embed_over_raw"] = (
                    row["embed_global_only_img_s"] / row["encode_global_raw_img_s"]
                )
                print(json.dumps(row), flush=True)
                results["results"].append(row)
        # streaming: peak RSS of embed over N and 16N crops (small preset, CPU)
        cfg = CytoselfConfig.preset("small", in_channels=2, num_classes=16)
        model = Cytoself(cfg)
        run = make_run(model, cfg, root)
        peaks = {}
        for n in (256, 4096):
            store = make_store(root / f"mem{n}.h5", n, cfg.image_size)
            peaks[n] = peak_rss_mib(run, store, root / f"mem{n}-out.h5", 64)
        results["embed_peak_rss_mib"] = {
            "batch_size": 64,
            "preset": "small",
            "crops": {str(k): round(v, 1) for k, v in peaks.items()},
        }
        print("embed peak RSS (MiB):", results["embed_peak_rss_mib"], flush=True)
    results["load_average_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results, args.out.with_suffix(".md"))
    print(f"wrote {args.out}")


def write_markdown(results: dict, path: Path) -> None:
    m = results["machine"]
    lines = [
        "# Training and embedding throughput (`benchmarks/bench_train.py`)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} "
        f"({m['torch_threads']} threads), Python {m['python']}, NumPy {m['numpy']}; "
        f"CUDA: {m['cuda'] or 'none (CUDA benchmarks skipped)'}.",
        f"Batch size {results['batch_size']}, {results['workers']} DataLoader worker(s), "
        f"{results['steps']} timed training steps, best of {results['repeats']} interleaved "
        "repeats. "
        f"Load average at start {tuple(round(x, 1) for x in results['load_average_start'])}, "
        f"at end {tuple(round(x, 1) for x in results['load_average_end'])}: "
        + results["note"]
        + ".",
        "",
        "| preset | device | train raw | train loop (0 workers) | loop/raw "
        f"| train loop ({results['workers']} workers) | encode_global raw "
        "| embed global-only | embed full | embed/raw |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["results"]:
        lines.append(
            f"| {r['preset']} | {r['device']} | {r['train_raw_img_s']:.1f} | "
            f"{r['train_loop_img_s']:.1f} | {r['loop_over_raw']:.2f} | "
            f"{r['train_loop_workers_img_s']:.1f} | "
            f"{r['encode_global_raw_img_s']:.1f} | {r['embed_global_only_img_s']:.1f} | "
            f"{r['embed_full_img_s']:.1f} | {r['embed_over_raw']:.2f} |"
        )
    p = results["embed_peak_rss_mib"]
    lines += [
        "",
        "All rates in images/s. *raw*: the model alone on in-memory batches; *loop*: "
        "`train_one_epoch` fed from the HDF5 store (augmentation, DataLoader); *embed*: "
        "`cyto.nn.embed` end to end (default workers: 0 on CPU) including model loading "
        "and HDF5 writing.",
        "",
        f"Streaming: peak RSS of `embed` ({p['preset']} preset, batch {p['batch_size']}) "
        + ", ".join(f"{k} crops: {v} MiB" for k, v in p["crops"].items())
        + ".",
        "",
    ]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
