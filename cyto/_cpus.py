"""How many CPUs may this process use? (affinity mask and container CPU quota)

``os.cpu_count()`` counts the machine's CPUs, not the ones a process may use: a job
pinned to 4 cores of a 64-core node, or a container limited to 2 CPUs, would start 64
compute threads that fight over 2-4 cores. Standard library only, so every layer may use
it (worker pools in ``preprocess``, torch threads in ``nn``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["available_cpus", "cgroup_cpu_quota", "free_cpus"]


def cgroup_cpu_quota(root: str | os.PathLike = "/sys/fs/cgroup") -> float | None:
    """The container's CPU limit in CPUs (cgroup v2 ``cpu.max`` or v1 CFS quota), if any.

    Parameters
    ----------
    root : str or PathLike, default "/sys/fs/cgroup"
        Mount point of the cgroup file system.

    Returns
    -------
    float or None
        E.g. 1.5 for ``cpu.max = "150000 100000"``; None when unlimited or unknown.
    """
    root = Path(root)
    try:
        text = (root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        if text:
            return None
    except (OSError, ValueError, IndexError):
        pass
    try:  # cgroup v1
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by the CPU quota (at least 1).

    Returns
    -------
    int

    Examples
    --------
    >>> available_cpus() >= 1
    True
    """
    if hasattr(os, "sched_getaffinity"):
        n = len(os.sched_getaffinity(0))
    else:  # pragma: no cover - macOS, Windows
        n = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def _cpu_times(cpus: set[int]) -> tuple[int, int] | None:
    """(idle, total) jiffies summed over ``cpus`` from /proc/stat, or None."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    idle = total = 0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        values = [int(v) for v in fields[:8]]
        idle += values[3] + values[4]  # idle + iowait
        total += sum(values)
    return (idle, total) if total else None


def free_cpus(seconds: float = 0.25) -> float | None:
    """How many of this process's CPUs were idle over the next ``seconds`` (Linux).

    Call it while this process is not computing: the CPUs kept busy meanwhile are busy
    with other work (another job, a notebook, a second cyto run).

    Parameters
    ----------
    seconds : float, default 0.25
        Sampling window.

    Returns
    -------
    float or None
        Idle CPUs (between 0 and :func:`available_cpus`), None where /proc/stat is
        not available.
    """
    import time

    if not hasattr(os, "sched_getaffinity"):  # pragma: no cover - macOS, Windows
        return None
    cpus = set(os.sched_getaffinity(0))
    before = _cpu_times(cpus)
    time.sleep(seconds)
    after = _cpu_times(cpus)
    if before is None or after is None or after[1] <= before[1]:
        return None
    share = (after[0] - before[0]) / (after[1] - before[1])
    return max(0.0, min(1.0, share)) * min(len(cpus), available_cpus())
