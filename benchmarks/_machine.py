"""Machine description recorded with every benchmark result.

Shared by the ``benchmarks/bench_*.py`` scripts (imported as ``from _machine import
machine_info``: a script's own folder is first on ``sys.path`` when it is run as
``python benchmarks/bench_x.py``). Package versions come from the installed
distributions' metadata, so listing ``"torch"`` does not import torch; only
``torch=True`` does (for the thread count and the CUDA device).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

__all__ = ["cpu_model", "load_average", "machine_info", "package_version"]


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo``, else what :mod:`platform` reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(name: str) -> str:
    """The installed version of distribution ``name``, or ``"not installed"``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (the machine may be shared)."""
    return list(os.getloadavg())


def machine_info(
    *,
    packages: Sequence[str] = ("numpy",),
    torch: bool = False,
    load: bool = False,
    note: str | None = None,
) -> dict[str, object]:
    """Describe this machine for a benchmark result.

    Parameters
    ----------
    packages : sequence of str, default ("numpy",)
        Distributions whose versions to record, each under its own name
        (``"not installed"`` when absent); none of them is imported.
    torch : bool, default False
        Import torch and record its version, its intra-op thread count
        (``torch_threads``) and the name of CUDA device 0 (``cuda``, None without one).
    load : bool, default False
        Record the load averages now as ``load_average_at_start``.
    note : str, optional
        A free-text remark stored as ``note``.

    Returns
    -------
    dict
        ``cpu``, ``cores``, ``affinity`` (cores this process may use), ``python`` and
        ``platform``, then the optional entries above; JSON-serialisable.

    Examples
    --------
    >>> info = machine_info(packages=("numpy", "scipy"), load=True)
    >>> sorted(k for k in info if k not in ("numpy", "scipy"))[:3]
    ['affinity', 'cores', 'cpu']
    """
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    info: dict[str, object] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "affinity": affinity,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for name in packages:
        info[name] = package_version(name)
    if torch:
        import torch as _torch

        info["torch"] = _torch.__version__
        info["torch_threads"] = _torch.get_num_threads()
        info["cuda"] = _torch.cuda.get_device_name(0) if _torch.cuda.is_available() else None
    if load:
        info["load_average_at_start"] = load_average()
    if note is not None:
        info["note"] = note
    return info


def write_section(path: Path, name: str, text: str) -> None:
    """Put ``text`` in ``path`` between ``<!-- name -->`` markers, replacing the block
    a previous run left there (or appending it), so results of two benchmarks can share
    one page without either deleting the other's."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    old = path.read_text() if path.is_file() else ""
    if start in old and end in old:
        new = old[: old.index(start)] + block + old[old.index(end) + len(end) + 1 :]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + block
    path.write_text(new)


def kept_sections(path: Path) -> str:
    """The ``<!-- name -->`` blocks of ``path`` (to carry over when a page is rewritten)."""
    import re

    if not path.is_file():
        return ""
    blocks = re.finditer(r"<!-- (\w+) -->\n.*?<!-- /\1 -->\n", path.read_text(), flags=re.S)
    return "".join(m.group(0) for m in blocks)


def module_at(rev: str, path: str) -> dict:
    """The namespace of the module ``path`` as it was at commit ``rev`` (its source run
    in place, importing the rest of cyto from the working tree), for before/after
    comparisons in one process."""
    import subprocess

    src = subprocess.run(
        ["git", "show", f"{rev}:{path}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent,
    ).stdout
    ns: dict = {"__name__": f"{Path(path).stem}_at_{rev}"}
    exec(compile(src, f"{rev}:{path}", "exec"), ns)
    return ns
