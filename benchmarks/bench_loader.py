"""Training-loader throughput from the HDF5 crop store: crops/s per CPU core, by layout.

What a GPU needs from the host is crops, augmented and batched, in random order over a
whole store far larger than the page cache. This measures exactly what ``cyto train``
runs: :class:`cyto.nn.CropDataset` with :class:`~cyto.nn.DihedralAugment`, a
:class:`~cyto.nn.BlockShuffleSampler` (a fresh random order over every crop) and a
``DataLoader`` making batches of 256, in a fresh process with one thread and no worker
(so the number is one core's), with the store's pages dropped from the page cache
first (``posix_fadvise(DONTNEED)``: a cold read from disk, as for a store larger than
memory) and again warm.

Stores: ``--crops`` crops of 2x100x100 float16 (the paper's shape), real pixels (the
OpenCell Hoechst fields of ``../shared/data`` through ``preprocess_fov``, repeated with
rotations; random smooth images when the folder is absent), in three layouts:

* ``chunked``: several crops per 256 KiB chunk, LZF + shuffle (what cyto wrote before);
* ``crop-lzf``: one crop per chunk, LZF + shuffle (the default now);
* ``crop-raw``: one crop per chunk, uncompressed (``--store-compression none``).

``--before SRC`` also runs the same measurement with the cyto source tree at ``SRC``
(e.g. a ``git worktree`` of an older commit) on the ``chunked`` layout: the loader as it
was, side by side in the same run.

Run::

    git worktree add /tmp/cyto-before e1f40f0
    flock /tmp/cyto-bench.lock python benchmarks/bench_loader.py --before /tmp/cyto-before

Writes ``benchmarks/results/loader.json`` and ``loader.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import machine_info

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
REAL = ROOT.parent / "shared" / "data" / "opencell" / "hoechst_zprojections"

# One measurement, run in a fresh interpreter with PYTHONPATH set to the cyto under test.
_MEASURE = r"""
import json, os, sys, time
os.environ["OMP_NUM_THREADS"] = "1"
import numpy as np, torch
torch.set_num_threads(1)
from torch.utils.data import DataLoader
from cyto.nn import BlockShuffleSampler, CropDataset, DihedralAugment
import cyto.nn._dataset as dsm

path, cold = sys.argv[1], sys.argv[2] == "cold"
seconds, batch, workers = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if cold:
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
ds = CropDataset(path, augment=DihedralAugment(0))
kw = {"collate_fn": dsm.collate_crops} if hasattr(dsm, "collate_crops") else {}
if workers:
    kw["prefetch_factor"] = 4
loader = DataLoader(ds, batch_size=batch, sampler=BlockShuffleSampler(ds, seed=1),
                    num_workers=workers, drop_last=True, **kw)
start = time.perf_counter()
done = 0
for x, y in loader:
    assert x.dtype == torch.float32 and x.shape[0] == batch
    done += int(x.shape[0])
    if time.perf_counter() - start > seconds:
        break
elapsed = time.perf_counter() - start
print(json.dumps({"crops": done, "seconds": elapsed, "crops_per_s": done / elapsed}))
"""


def real_crops() -> np.ndarray:
    """Preprocessed crops of the real OpenCell Hoechst fields (protein = Hoechst)."""
    import tifffile

    from cyto.preprocess import preprocess_fov

    crops = []
    for path in sorted(REAL.glob("*.tif")):
        image = tifffile.imread(path).astype(np.float32)
        crops.append(preprocess_fov(image, image).crops)
    return np.concatenate(crops).astype(np.float16)


def smooth_crops(n: int = 300) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    x = gaussian_filter(rng.random((n, 2, 100, 100)), sigma=(0, 0, 3, 3))
    x = (x - x.min()) / (x.max() - x.min())
    return x.astype(np.float16)


def write_stores(folder: Path, n: int) -> dict[str, Path]:
    import h5py

    from cyto.data import write_crop_store

    base = real_crops() if REAL.is_dir() else smooth_crops()
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(base), n)
    turns = rng.integers(0, 4, n)
    crops = np.stack([np.rot90(base[i], k=int(t), axes=(-2, -1)) for i, t in zip(pick, turns)])
    labels = np.array([f"P{i % 100:03d}" for i in range(n)])
    stores = {
        "crop-lzf": write_crop_store(folder / "crop-lzf.h5", crops, labels),
        "crop-raw": write_crop_store(folder / "crop-raw.h5", crops, labels, compression=None),
    }
    # the layout cyto wrote before: 256 KiB chunks (6 crops of 40 KiB), LZF + shuffle
    legacy = folder / "chunked.h5"
    write_crop_store(legacy, crops, labels)
    with h5py.File(legacy, "a") as f:
        del f["crops"]
        f.create_dataset(
            "crops", data=crops, chunks=(6, *crops.shape[1:]), maxshape=(None, *crops.shape[1:]),
            compression="lzf", shuffle=True,
        )  # fmt: skip
    stores["chunked"] = legacy
    return stores


def measure(
    src: Path, store: Path, *, cold: bool, seconds: float, batch: int, workers: int
) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    args = [str(store), "cold" if cold else "warm", str(seconds), str(batch), str(workers)]
    res = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args], env=env, capture_output=True, text=True
    )
    if res.returncode:
        raise RuntimeError(f"measurement failed for {store} with {src}:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# Training loader: crops/s per core from the HDF5 crop store",
        "",
        f"`python benchmarks/bench_loader.py{' --before SRC' if result['before'] else ''}` "
        f"(see its docstring). {result['crops']:,} crops of 2x100x100 float16 "
        f"({result['pixels']}); batches of {result['batch']}, random order over the whole "
        "store, dihedral augmentation, float32 tensors out; one process, one thread, no "
        "DataLoader worker (one core), except the last rows. Cold: the store's pages "
        "dropped from the page cache before the run (as for a store larger than memory).",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores; Python {m.get('python')}, "
        f"h5py {m.get('h5py', '?')}, HDF5 {m.get('hdf5', '?')}, torch {m.get('torch', '?')}.",
        "",
        "| code | layout | store size | cold crops/s | warm crops/s |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['code']} | {row['layout']} | {row['mib']:.0f} MiB | "
            f"{row['cold']['crops_per_s']:,.0f} | {row['warm']['crops_per_s']:,.0f} |"
        )
    lines += ["", result["conclusion"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crops", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--before", type=Path, help="source tree of the cyto to compare with")
    parser.add_argument("--dir", type=Path, help="folder for the stores (default: temporary)")
    parser.add_argument("--out", type=Path, default=RESULTS / "loader")
    args = parser.parse_args(argv)

    import h5py

    info = machine_info(packages=("numpy", "h5py", "imagecodecs"), torch=True)
    info["hdf5"] = h5py.version.hdf5_version
    info["load_average_start"] = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        t = time.perf_counter()
        stores = write_stores(Path(tmp), args.crops)
        print(f"stores written in {time.perf_counter() - t:.0f} s", flush=True)
        runs = [("before", args.before, "chunked", 0)] if args.before else []
        runs += [("now", ROOT, layout, 0) for layout in ("chunked", "crop-lzf", "crop-raw")]
        runs += [("now, 2 workers", ROOT, layout, 2) for layout in ("crop-lzf", "crop-raw")]
        rows = []
        for code, src, layout, workers in runs:
            row = {"code": code, "layout": layout, "workers": workers}
            row["mib"] = stores[layout].stat().st_size / 2**20
            for cold in (True, False):
                row["cold" if cold else "warm"] = measure(
                    src, stores[layout], cold=cold, seconds=args.seconds, batch=args.batch,
                    workers=workers,
                )  # fmt: skip
            print(json.dumps(row), flush=True)
            rows.append(row)
    info["load_average_end"] = os.getloadavg()
    best = {r["layout"]: r for r in rows if r["code"] == "now"}
    before = next((r for r in rows if r["code"] == "before"), best["chunked"])
    conclusion = (
        f"Default layout: one crop per chunk, LZF + shuffle: "
        f"{best['crop-lzf']['cold']['crops_per_s']:,.0f} crops/s per core cold "
        f"({best['crop-lzf']['cold']['crops_per_s'] / before['cold']['crops_per_s']:.1f}x the "
        f"loader before, {before['cold']['crops_per_s']:,.0f}) on a store no larger than "
        "before. Uncompressed (`--store-compression none`): "
        f"{best['crop-raw']['cold']['crops_per_s']:,.0f} crops/s per core for "
        f"{best['crop-raw']['mib'] / best['crop-lzf']['mib']:.2f}x the disk. Why: with "
        "several crops per chunk a random read decodes every crop of its chunk, and HDF5's "
        "selection machinery costs more than the decoding; one crop per chunk read with "
        "one pread and imagecodecs' LZF decoder decodes only what is asked for."
    )
    result = {
        "machine": info,
        "crops": args.crops,
        "batch": args.batch,
        "pixels": "real OpenCell crops" if REAL.is_dir() else "smooth random images",
        "before": str(args.before) if args.before else None,
        "rows": rows,
        "conclusion": conclusion,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    args.out.with_suffix(".md").write_text(_markdown(result))
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
