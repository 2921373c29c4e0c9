"""Benchmark of the vector quantizer: forward + backward time relative to one matmul.

For each case, the cost of ``VectorQuantizer`` (forward + backward, torch backend) is
reported as a ratio to one ``torch.matmul`` of the ``(M x D) · (D x K)`` shape measured in
the same run (interleaved rounds; the ratio is the median of per-round ratios, so slow
phases of a shared machine hit both sides alike). A re-implementation of the reference
cytoself quantizer's dense approach (full ``N x K`` distances, softmax and one-hot matrices,
one-hot matmul) is timed for comparison. Peak extra memory (resident-set high-water mark
over the inputs) is measured for each method in a fresh subprocess. On CUDA the Triton
backend is timed against the torch backend and the matmul.

Run::

    flock /tmp/cyto-bench.lock python benchmarks/bench_quantize.py

Writes ``benchmarks/results/quantize.json`` and ``quantize.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _machine import machine_info

from cyto.nn import VectorQuantizer

RESULTS = Path(__file__).resolve().parent / "results"
K, D = 2048, 64
# (name, batch, channels, height/width, split): M = batch * split * hw * hw vectors
CASES = {
    "local_M40000": (64, 64, 25, 1),  # VQ1 of a batch of 64: 64 x 25 x 25
    "global_split9_M9216": (64, 576, 4, 9),  # VQ2 of a batch of 64: 64 x 9 x 4 x 4
}


def dense_reference(z: torch.Tensor, codebook: torch.Tensor, split: int, beta: float = 0.25):
    """The reference cytoself approach, re-implemented from its description.

    Full (N, K) distance matrix, softmax over it, argmin, (N, K) one-hot encodings,
    quantized = one-hot @ codebook, MSE losses with stop-gradients, straight-through,
    perplexity from the mean one-hot.
    """
    b, c, h, w = z.shape
    d = c // split
    flat = z.reshape(b, split, d, h, w).permute(0, 1, 3, 4, 2).reshape(-1, d)
    distances = flat.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1) - 2 * flat @ codebook.t()
    _soft = F.softmax(-distances, dim=1)  # materialised, as in the reference
    idx = distances.argmin(1)
    one_hot = torch.zeros(flat.shape[0], codebook.shape[0], device=z.device)
    one_hot.scatter_(1, idx[:, None], 1)
    q = one_hot @ codebook
    loss = F.mse_loss(q, flat.detach()) + beta * F.mse_loss(flat, q.detach())
    q = flat + (q - flat).detach()
    avg = one_hot.mean(0)
    perplexity = torch.exp(-(avg * torch.log(avg + 1e-10)).sum())
    quantized = q.reshape(b, split, h, w, d).permute(0, 1, 4, 2, 3).reshape(b, c, h, w)
    return quantized, loss, perplexity, _soft


def _inputs(case: str, device: str = "cpu", seed: int = 0):
    b, c, hw, split = CASES[case]
    g = torch.Generator(device="cpu").manual_seed(seed)
    z = (torch.randn(b, c, hw, hw, generator=g) * 0.05).to(device).requires_grad_(True)
    grad = torch.randn(b, c, hw, hw, generator=g).to(device)
    codebook = (torch.rand(K, D, generator=g) * 0.1 - 0.05).to(device)
    m = b * split * hw * hw
    a = torch.randn(m, D, generator=g).to(device)
    return z, grad, codebook, a, split, m


def _methods(case: str, device: str = "cpu", backends=("torch",), chunk_size=None):
    z, grad, codebook, a, split, m = _inputs(case, device)
    codebook_t = codebook.t()
    one = torch.ones((), device=device)
    out_buf = torch.empty(m, K, device=device)
    fns = {
        "matmul": lambda: torch.matmul(a, codebook_t),
        # the same GEMM into a reused output: no allocation / page faults, the compute floor
        "matmul_preallocated_out": lambda: torch.matmul(a, codebook_t, out=out_buf),
    }
    for backend in backends:
        vq = VectorQuantizer(K, D, split=split, backend=backend, chunk_size=chunk_size).to(device)
        with torch.no_grad():
            vq.codebook.copy_(codebook)

        def fwd_bwd(vq=vq):
            out = vq(z)
            torch.autograd.backward([out.quantized, out.loss], [grad, one])
            vq.codebook.grad = None
            z.grad = None

        def fwd(vq=vq):
            with torch.no_grad():
                vq(z)

        fns[f"{backend}_fwd_bwd"] = fwd_bwd
        fns[f"{backend}_fwd"] = fwd
    cb = codebook.clone().requires_grad_(True)

    def dense():
        q, loss, _, _ = dense_reference(z, cb, split)
        torch.autograd.backward([q, loss], [grad, one])
        cb.grad = None
        z.grad = None

    fns["dense_reference_fwd_bwd"] = dense
    return fns, m


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_case(case: str, *, rounds: int, device: str, backends, dense_rounds: int) -> dict:
    fns, m = _methods(case, device, backends)
    for fn in fns.values():  # warm-up
        fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        for name, fn in fns.items():
            if name.startswith("dense") and r >= dense_rounds:
                continue
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    base = times["matmul"]
    out = {"M": m, "D": D, "K": K, "split": CASES[case][3], "rounds": rounds, "methods": {}}
    for name, ts in times.items():
        paired = [t / base[i] for i, t in enumerate(ts)]
        out["methods"][name] = {
            "min_ms": 1e3 * min(ts),
            "median_ms": 1e3 * statistics.median(ts),
            "ratio_to_matmul_median_paired": statistics.median(paired),
            "ratio_to_matmul_of_mins": min(ts) / min(base),
            "ratio_to_preallocated_matmul_of_mins": min(ts) / min(times["matmul_preallocated_out"]),
        }
    if device == "cuda":
        out["peak_extra_mib"] = {}
        for name, fn in fns.items():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            start = torch.cuda.memory_allocated()
            fn()
            torch.cuda.synchronize()
            out["peak_extra_mib"][name] = (torch.cuda.max_memory_allocated() - start) / 2**20
    return out


def _peak_child(case: str, method: str) -> None:
    """Subprocess body: print the resident high-water mark added by one call of ``method``."""
    torch.manual_seed(0)
    fns, _ = _methods(case)
    # warm up kernels and thread pools on a tiny problem so they are not counted
    small = VectorQuantizer(64, D, backend="torch")
    out = small(torch.randn(2, D, 3, 3, requires_grad=True))
    out.loss.backward()
    torch.matmul(torch.randn(8, D), torch.randn(D, 8))
    before = _high_water_kib()
    fns[method]()
    after = _high_water_kib()
    print(json.dumps({"peak_extra_mib": (after - before) / 1024}))


def _high_water_kib() -> float:
    """Resident-set high-water mark of this process in KiB.

    ``VmHWM`` belongs to the process image (reset by exec), unlike ``ru_maxrss``, which a
    child inherits from the parent that spawned it.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_memory(case: str, method: str) -> float:
    proc = subprocess.run(
        [sys.executable, __file__, "--peak-child", case, method],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_extra_mib"]


def write_markdown(result: dict, path: Path) -> None:
    lines = [
        "# Vector quantizer benchmark",
        "",
        "Forward + backward of `VectorQuantizer` as a ratio to one `torch.matmul` of the "
        "(M x D)·(D x K) shape, measured in the same run (median of per-round ratios; "
        "min times in ms). `dense_reference` re-implements the reference cytoself approach "
        "(full N x K distances, softmax and one-hot). Peak extra memory: resident high-water "
        "mark added by one call, in a fresh process. `matmul(out=)` is the same GEMM into a "
        "preallocated output (no allocation or page faults of the M x K result): the compute "
        "floor, given as a ratio of min times. The plain matmul's time varies between runs "
        "with how cheaply its fresh M x K output is faulted in.",
        "",
        "Machine: " + ", ".join(f"{k}={v}" for k, v in result["machine"].items()),
        "",
    ]
    for device, cases in result["devices"].items():
        lines += [f"## {device}", ""]
        if isinstance(cases, str):
            lines += [cases, ""]
            continue
        lines += [
            "| case | M | method | min ms | ratio to matmul | ratio to matmul(out=) "
            "| peak extra MiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for case, r in cases.items():
            for name, m in r["methods"].items():
                peak = r.get("peak_extra_mib", {}).get(name)
                peak_s = f"{peak:.0f}" if peak is not None else "-"
                lines.append(
                    f"| {case} | {r['M']} | {name} | {m['min_ms']:.1f} | "
                    f"{m['ratio_to_matmul_median_paired']:.2f} | "
                    f"{m['ratio_to_preallocated_matmul_of_mins']:.2f} | {peak_s} |"
                )
            if "chunk_buffer_mib" in r:
                lines.append(
                    f"| {case} | | (chunk buffer {r['chunk_buffer_mib']:.1f} MiB; "
                    f"input {r['input_mib']:.1f} MiB; matmul output {r['matmul_out_mib']:.0f} MiB)"
                    " | | | | |"
                )
        lines.append("")
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--dense-rounds", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "quantize")
    parser.add_argument("--peak-child", nargs=2, metavar=("CASE", "METHOD"))
    args = parser.parse_args()
    if args.peak_child:
        _peak_child(*args.peak_child)
        return
    info = machine_info(
        packages=("numpy", "triton"),
        torch=True,
        load=True,
        note="machine shared with other jobs; ratios are measured side by side",
    )
    result = {"machine": info, "devices": {}}
    cpu = {}
    for case in CASES:
        print(f"[cpu] {case} ...", flush=True)
        r = time_case(
            case,
            rounds=args.rounds,
            device="cpu",
            backends=("torch",),
            dense_rounds=args.dense_rounds,
        )
        vq = VectorQuantizer(K, D, backend="torch")
        r["chunk_size"] = vq.chunk_size
        r["chunk_buffer_mib"] = vq.chunk_size * K * 4 / 2**20
        r["input_mib"] = r["M"] * D * 4 / 2**20
        r["matmul_out_mib"] = r["M"] * K * 4 / 2**20
        if not args.no_memory:
            r["peak_extra_mib"] = {
                name: peak_memory(case, name)
                for name in ("matmul", "torch_fwd_bwd", "torch_fwd", "dense_reference_fwd_bwd")
            }
        cpu[case] = r
        for name, m in r["methods"].items():
            print(f"  {name:28s} {m['min_ms']:8.1f} ms  x{m['ratio_to_matmul_median_paired']:.2f}")
    result["devices"]["cpu"] = cpu
    if torch.cuda.is_available():
        gpu = {}
        for case in CASES:
            gpu[case] = time_case(
                case,
                rounds=args.rounds,
                device="cuda",
                backends=("torch", "triton"),
                dense_rounds=args.rounds,
            )
        result["devices"]["cuda"] = gpu
    else:
        result["devices"]["cuda"] = "skipped: no CUDA device in this run"
    result["machine"]["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for suffix, writer in (
        (".json", lambda p: p.write_text(json.dumps(result, indent=2))),
        (".md", lambda p: write_markdown(result, p)),
    ):
        final = args.out.with_suffix(suffix)
        tmp = final.with_suffix(suffix + ".tmp")
        writer(tmp)
        os.replace(tmp, final)
    print(f"wrote {args.out}.json/.md")


if __name__ == "__main__":
    main()
