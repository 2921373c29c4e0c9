"""The JUMP consortium's retrieval metrics of a perturbation screen, on well profiles.

- **Phenotypic activity**: can a perturbation's replicate wells be told from the
  control wells? Each replicate well ranks the other replicates (positives) among the
  control wells (negatives); the perturbation's mAP is tested against random rankings
  (permutation p-value, Benjamini–Hochberg q-value). "Active" = q < 0.05.
- **Phenotypic consistency**: do perturbations of one mechanism of action (MoA, or one
  gene) look alike? Each perturbation's mean profile ranks the other perturbations of
  its MoA (positives) among those of other MoAs (negatives).

Both follow ``copairs``' definitions (pos_sameby / neg_diffby with a reference index for
the controls); ``tests/analysis/test_activity.py`` checks the APs against copairs itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cyto.analysis._retrieval import RetrievalResult, average_precision, mean_average_precision
from cyto.analysis._spectra import mean_by_label

__all__ = ["phenotypic_activity", "phenotypic_consistency", "screen_metrics", "well_profiles"]


def _labels(values: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values).astype(str)
    if arr.shape != (n,):
        raise ValueError(f"`{name}` must have one value per profile ({n}), got shape {arr.shape}")
    return arr


def phenotypic_activity(
    X: Any,
    perturbations: Any,
    *,
    control: str,
    null_size: int = 10000,
    seed: int = 0,
    threshold: float = 0.05,
    metric: str = "cosine",
) -> dict[str, Any]:
    """mAP of each perturbation's replicate wells against the control wells.

    Parameters
    ----------
    X : (n, d) array_like
        Well profiles (e.g. the mean encoding of each well's crops).
    perturbations : (n,) array_like of str
        The perturbation of each well; control wells hold ``control``.
    control : str
        The negative-control perturbation (``DMSO``, an empty vector, a non-targeting
        guide).
    null_size, seed, threshold
        As in :func:`~cyto.analysis.mean_average_precision`.
    metric : {"cosine", "euclidean"}, default "cosine"

    Returns
    -------
    dict
        :func:`~cyto.analysis.mean_average_precision`'s summary over the perturbations
        with at least two wells (``groups``: per perturbation ``map``, ``p_value``,
        ``q_value``; ``fraction_significant``: the fraction active at q < ``threshold``),
        plus ``n_controls`` and ``n_perturbations``.

    Raises
    ------
    ValueError
        If there is no control well, or no perturbation has two wells.
    """
    X = np.asarray(X, dtype=np.float64)
    pert = _labels(perturbations, len(X), "perturbations")
    is_control = pert == str(control)
    if not is_control.any():
        raise ValueError(
            f"no control well: `control` {control!r} is not among the perturbations "
            f"({sorted(set(pert.tolist()))[:10]})"
        )
    names, counts = np.unique(pert[~is_control], return_counts=True)
    tested = names[counts >= 2]
    if tested.size == 0:
        raise ValueError("no perturbation has two wells: activity needs replicate wells")
    controls = np.flatnonzero(is_control)
    parts = []
    for name in tested:
        mine = np.flatnonzero(pert == name)
        rows = np.concatenate([mine, controls])
        # controls: one label each, so they are negatives only (copairs' reference index)
        lab = np.concatenate([np.full(mine.size, "query"), [f"c{k}" for k in controls]])
        r = average_precision(X[rows], lab, metric=metric, queries=np.arange(mine.size))
        parts.append((r.ap[: mine.size], r.n_pos[: mine.size], r.n_total[: mine.size], name))
    result = RetrievalResult(
        ap=np.concatenate([p[0] for p in parts]),
        n_pos=np.concatenate([p[1] for p in parts]),
        n_total=np.concatenate([p[2] for p in parts]),
        labels=np.concatenate([np.full(p[0].size, p[3], dtype=object) for p in parts]),
    )
    out = mean_average_precision(result, null_size=null_size, seed=seed, threshold=threshold)
    return {**out, "n_controls": int(controls.size), "n_perturbations": int(tested.size)}


def phenotypic_consistency(
    X: Any,
    perturbations: Any,
    moa: dict[str, str],
    *,
    control: str | None = None,
    null_size: int = 10000,
    seed: int = 0,
    threshold: float = 0.05,
    metric: str = "cosine",
) -> dict[str, Any]:
    """mAP of perturbations retrieving the others of their MoA (or gene).

    Parameters
    ----------
    X : (n, d) array_like
        Well (or crop) profiles; averaged per perturbation first.
    perturbations : (n,) array_like of str
        The perturbation of each profile.
    moa : dict of str to str
        Perturbation to its MoA (or target gene); perturbations without one are left out.
    control : str, optional
        The control perturbation, left out.
    null_size, seed, threshold, metric
        As in :func:`phenotypic_activity`.

    Returns
    -------
    dict
        :func:`~cyto.analysis.mean_average_precision`'s summary per MoA, plus
        ``n_perturbations``.

    Raises
    ------
    ValueError
        If no MoA has two perturbations.
    """
    X = np.asarray(X, dtype=np.float64)
    pert = _labels(perturbations, len(X), "perturbations")
    keep = np.array([p in moa and p != control for p in pert])
    names, profiles = mean_by_label(X[keep], pert[keep])
    labels = np.array([moa[str(p)] for p in names], dtype=object)
    _, counts = np.unique(labels.astype(str), return_counts=True)
    if not (counts >= 2).any():
        raise ValueError("no MoA (or gene) has two perturbations: consistency is undefined")
    r = average_precision(profiles, labels, metric=metric)
    out = mean_average_precision(r, null_size=null_size, seed=seed, threshold=threshold)
    return {**out, "n_perturbations": len(names)}


def well_profiles(X: Any, perturbations: Any, wells: Any) -> tuple[np.ndarray, np.ndarray]:
    """The mean profile and the perturbation of every well.

    Parameters
    ----------
    X : (n, d) array_like
        Crop profiles (encodings or features).
    perturbations, wells : (n,) array_like of str
        Each crop's perturbation and well (give ``plate/well`` when wells repeat across
        plates).

    Returns
    -------
    profiles : (w, d) float64 ndarray
    perturbation : (w,) str ndarray

    Raises
    ------
    ValueError
        If a well holds crops of several perturbations.
    """
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    pids = _labels(perturbations, len(X), "perturbations")
    names, inverse = np.unique(_labels(wells, len(X), "wells"), return_inverse=True)
    sums = np.zeros((names.size, X.shape[1]))
    np.add.at(sums, inverse, X)
    profiles = sums / np.bincount(inverse)[:, None]
    pert = np.empty(names.size, dtype=object)
    for k in range(names.size):
        mine = set(pids[inverse == k].tolist())
        if len(mine) > 1:
            raise ValueError(f"well {names[k]!r} holds several perturbations: {sorted(mine)}")
        pert[k] = mine.pop()
    return profiles, pert.astype(str)


def screen_metrics(
    X: Any,
    perturbations: Any,
    wells: Any,
    *,
    control: str,
    moa: dict[str, str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """A screen's JUMP metrics of one representation, on its well profiles.

    Parameters
    ----------
    X : (n, d) array_like
        Crop profiles.
    perturbations, wells : (n,) array_like of str
        Each crop's perturbation and well (:func:`well_profiles`).
    control : str
        The control perturbation.
    moa : dict of str to str, optional
        Perturbation to MoA: consistency is scored too (None: not, and no key).
    seed : int, default 0
        Seed of the permutation nulls.

    Returns
    -------
    dict
        ``activity_map``, ``fraction_active``, ``active`` (perturbations at q < 0.05),
        ``n_wells``, ``activity`` (:func:`phenotypic_activity`'s summary) and, with
        ``moa``, ``consistency_map`` (None when no MoA has two perturbations).
    """
    profiles, pert = well_profiles(X, perturbations, wells)
    act = phenotypic_activity(profiles, pert, control=control, seed=seed)
    out = {
        "activity_map": act["map"],
        "fraction_active": act["fraction_significant"],
        "active": sorted(g["label"] for g in act["groups"] if g["q_value"] < 0.05),
        "n_wells": int(pert.size),
        "activity": act,
    }
    if moa is not None:
        try:
            out["consistency_map"] = phenotypic_consistency(
                profiles, pert, moa, control=control, seed=seed
            )["map"]
        except ValueError:  # no MoA with two perturbations among these wells
            out["consistency_map"] = None
    return out
