"""Training throughput vs torch threads, on an idle machine and next to a CPU-heavy process.

Each configuration runs in a fresh process (OpenMP reads its environment at start-up):
bare training steps of the ``small`` preset (100×100 crops, batch 32, forward + loss +
backward + Adam) for a fixed time, reporting images/s. Conditions: ``idle``, and
``busy`` with one extra process spinning on a core for the whole measurement (what a
colleague's job, a notebook or a second ``cyto`` run does to a shared machine).

Configurations: torch's own default (``threads`` unset), ``threads = 1``, the
:func:`cyto.nn.default_threads` choice without and with ``adapt`` (what ``cyto train``
and ``cyto embed`` do: leave out the CPUs other work keeps busy), and two of them with
``OMP_WAIT_POLICY=PASSIVE`` (threads sleep instead of spinning while they wait).

Usage::

    python benchmarks/bench_threads.py            # writes results/threads.{json,md}

About 3 minutes on 2 cores. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results"
SECONDS = 12.0

STEP = r"""
import json, sys, time
import torch
from cyto.nn import Cytoself, CytoselfConfig
threads = int(sys.argv[1])
if threads > 0:
    torch.set_num_threads(threads)
elif threads < 0:  # what cyto train does by default
    from cyto.nn import default_threads
    torch.set_num_threads(default_threads(adapt=True))
torch.manual_seed(0)
m = Cytoself(CytoselfConfig.preset("small", num_classes=16)).train()
opt = torch.optim.Adam(m.parameters(), lr=4e-4)
x = torch.rand(32, 2, 100, 100)
y = torch.randint(0, 16, (32,))
def step():
    out = m(x)
    loss = m.loss(x, y, out)
    opt.zero_grad()
    loss.total.backward()
    opt.step()
step(); step()
t = time.perf_counter(); n = 0
while time.perf_counter() - t < float(sys.argv[2]):
    step(); n += 32
rate = n / (time.perf_counter() - t)
print(json.dumps({"threads": torch.get_num_threads(), "images_per_s": rate}))
"""

SPIN = "import time\nt = time.time()\nwhile time.time() - t < 600: pass\n"


def run(threads: int, env_extra: dict[str, str], busy: bool) -> dict:
    """One measurement in a fresh process."""
    env = {**os.environ, **env_extra}
    env.pop("OMP_NUM_THREADS", None)
    spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if busy else None
    try:
        time.sleep(0.5 if busy else 0.0)
        out = subprocess.run(
            [sys.executable, "-c", STEP, str(threads), str(SECONDS)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    """Measure every configuration in both conditions; write the results."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from cyto.nn import default_threads

    auto = default_threads()
    configs = [
        ("torch default", 0, {}),
        ("threads = 1", 1, {}),
        (f"default_threads() = {auto}", auto, {}),
        ("cyto default: default_threads(adapt=True)", -1, {}),
        ("torch default, OMP_WAIT_POLICY=PASSIVE", 0, {"OMP_WAIT_POLICY": "PASSIVE"}),
        ("threads = 1, OMP_WAIT_POLICY=PASSIVE", 1, {"OMP_WAIT_POLICY": "PASSIVE"}),
    ]
    rows = []
    for name, threads, env in configs:
        row = {"config": name}
        for busy in (False, True):
            r = run(threads, env, busy)
            state = "busy" if busy else "idle"
            row[f"threads_{state}"] = r["threads"]
            row[state] = r["images_per_s"]
            print(
                f"{name} {'busy' if busy else 'idle'}: {r['images_per_s']:.1f} img/s",
                file=sys.stderr,
            )
        rows.append(row)
    info = machine_info(packages=("torch", "numpy"), torch=True, load=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "threads.json").write_text(
        json.dumps({"machine": info, "rows": rows}, indent=2) + "\n"
    )
    lines = [
        "# Training throughput vs threads, idle and next to a CPU-heavy process",
        "",
        "`python benchmarks/bench_threads.py`: bare training steps of the `small` preset "
        f"(100×100, batch 32), {SECONDS:.0f} s per measurement, each in a fresh process; "
        "`busy` = one other process spinning on a core meanwhile. "
        f"Machine: {info['cpu']}, {info['cores']} cores (affinity {info.get('affinity')}), "
        f"torch {info.get('torch')}.",
        "",
        "| configuration | threads idle / busy | idle images/s | busy images/s | busy / idle |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['threads_idle']} / {r['threads_busy']} | {r['idle']:.1f} | "
            f"{r['busy']:.1f} | "
            f"{r['busy'] / r['idle']:.2f} |"
        )
    (RESULTS / "threads.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'threads.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
