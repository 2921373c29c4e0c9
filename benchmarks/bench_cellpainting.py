"""The synthetic Cell Painting screen: cyto against raw pixels, intensity statistics and
CellProfiler features, on a plate it never saw.

One run, from the command line as a user would: ``cyto synth --kind cellpainting``
(20 perturbations of 5 MoAs, 15 active and 5 inactive, 4 wells each over 2 plates, 8
DMSO wells a plate, 2 fields a well); one crop store per plate; ``cyto train`` on plate
P1 (``--target protein_id``, the perturbation); ``cyto embed`` plate P2; ``cyto
evaluate --control DMSO --cellprofiler`` on every P2 crop (the JUMP activity and
consistency metrics on well profiles). The generator's truth (which perturbations are
active) scores the calls at q < 0.05.

    python benchmarks/bench_cellpainting.py [--work DIR] [--preset small] [--epochs 15]

Writes ``benchmarks/results/cellpainting.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine_info

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
STAINS = "DNA,ER,RNA,AGP,Mito"


def _cyto(*args: str) -> None:
    print("+ cyto", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "cyto", *args], check=True)


def _split_plates(work: Path) -> list[str]:
    rows = list(csv.DictReader(open(work / "manifest.csv", encoding="utf-8")))
    plates = sorted({r["plate"] for r in rows})
    for plate in plates:
        with open(work / f"manifest_{plate}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(r for r in rows if r["plate"] == plate)
    return plates


def _run(work: Path, preset: str, epochs: int) -> dict[str, float]:
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    _cyto("synth", "--kind", "cellpainting", "-o", str(work), "-q")
    seconds["synth"] = time.perf_counter() - t
    t = time.perf_counter()
    for plate in _split_plates(work):
        _cyto("preprocess", str(work / f"manifest_{plate}.csv"), "-o", str(work / f"{plate}.h5"),
              "--channels", STAINS, "--nucleus-channel", "DNA", "--crop-size", "48",
              "--downsample", "1", "--workers", "2", "-q")  # fmt: skip
    seconds["preprocess"] = time.perf_counter() - t
    (work / "train.toml").write_text(
        f"[train]\nbatch_size = 32\nmax_epochs = {epochs}\nnum_workers = 0\n"
        f'[model]\npreset = "{preset}"\n'
    )
    t = time.perf_counter()
    _cyto(
        "train",
        str(work / "P1.h5"),
        "-o",
        str(work / "run"),
        "--config",
        str(work / "train.toml"),
        "-q",
    )
    seconds["train"] = time.perf_counter() - t
    t = time.perf_counter()
    _cyto("embed", str(work / "run"), str(work / "P2.h5"), "-o", str(work / "P2-emb.h5"),
          "--no-progress", "--allow-degenerate")  # fmt: skip
    seconds["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    _cyto("evaluate", str(work / "P2-emb.h5"), "-o", str(work / "card"), "--ground-truth",
          str(work / "moa.csv"), "--split", "all", "--control", "DMSO", "--cellprofiler",
          "--allow-degenerate", "-q")  # fmt: skip
    seconds["evaluate"] = time.perf_counter() - t
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--epochs", type=int, default=15)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="cyto-cellpainting-"))
    seconds = _run(work, args.preset, args.epochs)
    card = json.loads((work / "card" / "evaluation.json").read_text())
    truth = json.loads((work / "synth.json").read_text())["perturbations"]
    active = {p["name"] for p in truth if p["potency"] > 0}
    rows = []
    for r in card["rows"]:
        called = set(r.get("active", []))
        rows.append({
            "representation": r["representation"].replace("baseline: ", ""),
            "activity_map": r["activity_map"], "consistency_map": r["consistency_map"],
            "found": len(called & active), "false": len(called - active),
            "fraction_active": r["activity_significant"],
        })  # fmt: skip
    machine = machine_info(packages=("numpy", "torch", "cp-measure"), load=True)
    record = {"preset": args.preset, "epochs": args.epochs, "seconds": seconds, "rows": rows,
              "n_active": len(active), "n_perturbations": len(truth),
              "machine": machine}  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cellpainting.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# The synthetic Cell Painting screen: held-out plate",
        "",
        f"`python benchmarks/bench_cellpainting.py --preset {args.preset} --epochs "
        f"{args.epochs}`: cyto trained on plate P1, every representation scored on plate P2 "
        f"(never seen in training) by `cyto evaluate --control DMSO --cellprofiler`; "
        f"{len(active)} of {len(truth)} perturbations are active (the generator's truth).",
        "",
        "| representation | activity mAP | active found at q < 0.05 (of "
        f"{len(active)}) | inactive called active | consistency mAP |",
        "|---|---|---|---|---|",
        *(
            f"| {r['representation']} | {r['activity_map']:.3f} | {r['found']} | {r['false']} "
            f"| {r['consistency_map']:.3f} |"
            for r in rows
        ),
        "",
        "Seconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()) + ".",
        "One seed, one run: no confidence intervals (issue 30 adds them).",
        "",
    ]
    (RESULTS / "cellpainting.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
