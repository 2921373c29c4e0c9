"""`cyto evaluate`: one evaluation card per embeddings file — Γ, mAP, complex recall, k-NN
accuracy, for the model and the model-free baselines, before and after batch correction."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cyto._atomic import write_text_atomic
from cyto.analysis import (
    CORRECTIONS,
    GroundTruth,
    aggregate,
    baseline_features,
    batch_column,
    cellprofiler_features,
    evaluate,
    read_atlas,
    screen_metrics,
    well_column,
)
from cyto.data import CropStore, check_output, output_folder
from cyto.workflows._inputs import _atomic_json, _print_stderr

__all__ = ["CARD_FILES", "CORRECTIONS", "card_markdown", "evaluation_card"]

#: File names of a card, in its folder.
CARD_FILES = ("evaluation.json", "evaluation.md", "profiles.csv")


def _write_profiles(path: Path, X: np.ndarray, pids: np.ndarray, gt: GroundTruth) -> list[Path]:
    """Per-protein mean profiles as pycytominer writes them: ``Metadata_*`` columns
    (protein, its label per ground-truth level, crop count), then one column per feature;
    as CSV, and as Parquet beside it when pyarrow is installed (``[parquet]`` extra)."""
    import csv
    import importlib.util
    import io

    names, profiles = aggregate(X, pids)
    counts = np.unique(np.asarray(pids).astype(str), return_counts=True)[1]
    levels = list(gt.levels)
    meta = ["Metadata_protein_id", *(f"Metadata_{lv}" for lv in levels), "Metadata_n_crops"]
    features = [f"feature_{j}" for j in range(profiles.shape[1])]
    labels = [[gt.levels[lv].get(str(name), "") for lv in levels] for name in names]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(meta + features)
    for name, lab, n, row in zip(names, labels, counts, profiles):
        w.writerow([name, *lab, int(n), *(f"{v:.6g}" for v in row)])
    write_text_atomic(path, buf.getvalue())
    written = [path]
    if importlib.util.find_spec("pyarrow") is not None:
        import pandas as pd

        from cyto._atomic import atomic_path

        table = pd.DataFrame(profiles.astype(np.float32), columns=features)
        for j, col in enumerate(meta[1:-1]):
            table.insert(j, col, [lab[j] for lab in labels])
        table.insert(0, "Metadata_protein_id", [str(n) for n in names])
        table.insert(len(meta) - 1, "Metadata_n_crops", counts.astype(np.int64))
        target = path.with_suffix(".parquet")
        with atomic_path(target) as tmp:
            table.to_parquet(tmp, index=False)
        written.append(target)
    return written


def _baseline_features(
    store: Any, crop_index: np.ndarray, *, cellprofiler: bool = False
) -> dict[str, np.ndarray]:
    """The baselines on the evaluated crops: raw pixels and intensity statistics of the
    protein channel (or the first), and with ``cellprofiler`` CellProfiler features of
    every stain (timed: their cost per crop is printed)."""
    with CropStore(store) as cs:
        order = np.argsort(crop_index)
        sorted_crops = cs.read(crop_index[order]).astype(np.float32)
        channels = tuple(cs.channels)
        nucleus = cs.params.get("nucleus_channel")
    crops = np.empty_like(sorted_crops)
    crops[order] = sorted_crops  # back in the embeddings file's row order
    pch = channels.index("protein") if "protein" in channels else 0
    out = baseline_features(crops[:, pch])
    if cellprofiler:
        t0 = time.perf_counter()
        out["CellProfiler (cp-measure)"] = cellprofiler_features(
            crops, channels, nucleus_channel=nucleus
        )[0]
        seconds = time.perf_counter() - t0
        _print_stderr(
            f"[evaluate] CellProfiler features: {1000 * seconds / max(len(crops), 1):.0f} ms "
            f"per crop ({len(crops)} crops, {len(channels)} channels)"
        )
    return out


def _screen_metrics(
    X: np.ndarray, pids: np.ndarray, wells: np.ndarray, control: str, gt: Any, seed: int
) -> dict[str, Any]:
    """Phenotypic activity and consistency of one representation on well profiles."""
    moa = None
    if gt.family_level is not None:
        moa = {p: m for p, m in gt.family_of().items() if m is not None}
    m = screen_metrics(X, pids, wells, control=control, moa=moa, seed=seed)
    out = {
        "activity_map": m["activity_map"],
        "activity_significant": m["fraction_active"],
        "active": m["active"],
        "n_wells": m["n_wells"],
    }
    if "consistency_map" in m:
        out["consistency_map"] = m["consistency_map"]
    return out


def _score(
    reps: dict[str, np.ndarray],
    applied: list[str],
    atlas: Any,
    gt: Any,
    batch: np.ndarray | None,
    screen: tuple[np.ndarray, str] | None,
    umap_seeds: Sequence[int],
    seed: int,
    echo: Callable[[str], None],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The card's rows (and their full evaluations): every representation × correction,
    with the screen metrics on well profiles when ``screen`` = (wells, control)."""
    rows, details = [], {}
    for name, X in reps.items():
        for corr in applied:
            Xc = X if corr == "none" else CORRECTIONS[corr](X, batch)
            ref = atlas.reference if (corr == "none" and name.startswith("cyto")) else None
            echo(f"[evaluate] {name}, correction {corr}: {len(Xc)} crops")
            ev = evaluate(
                Xc, atlas.pids, gt, reference=ref, umap_seeds=umap_seeds, hidden_seed=seed
            )
            rows.append(_card_row(name, corr, ev))
            if screen is not None:
                rows[-1] |= _screen_metrics(Xc, atlas.pids, screen[0], screen[1], gt, seed)
            details[f"{name} | {corr}"] = ev.to_dict()
    return rows, details


def _card_row(name: str, correction: str, ev: Any) -> dict[str, Any]:
    r = ev.retrieval
    return {
        "representation": name,
        "correction": correction,
        "gamma": {lv: s["mean"] for lv, s in ev.scores.items()},
        "gamma_sem": {lv: s["sem"] for lv, s in ev.scores.items()},
        "family_map": r.get("family", {}).get("map"),
        "family_significant": r.get("family", {}).get("fraction_significant"),
        "protein_map": r.get("protein", {}).get("map"),
        "complex_recall": r.get("complex", {}).get("recall"),
        "complex_recall_null": r.get("complex", {}).get("null_mean"),
        "knn_cosine": ev.knn.get("cosine"),
    }


def evaluation_card(
    embeddings: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    ground_truth: str | os.PathLike | None = None,
    complexes: str | os.PathLike | None = None,
    crops: str | os.PathLike | None = None,
    batch_key: str | None = None,
    umap_seeds: Sequence[int] = (0,),
    seed: int = 0,
    echo: Callable[[str], None] | None = None,
    split: str = "test",
    corrections: Sequence[str] = ("center_scale",),
    allow_degenerate: bool = False,
    overwrite: bool = False,
    control: str | None = None,
    well_key: str = "well",
    cellprofiler: bool = False,
) -> dict[str, Any]:
    """Evaluate an embeddings file against a ground truth, with baselines, as one card.

    Every representation — the model's global encodings and, when the crop store is
    found, the raw-pixel and intensity baselines on the same crops — is scored by
    :func:`cyto.analysis.evaluate` (Γ per level over ``umap_seeds``, family and protein
    mAP with FDR, complex recall, k-NN accuracy for the model), uncorrected and, with
    ``batch_key``, after each of ``corrections``: per-batch centring and scaling
    (:func:`cyto.analysis.center_scale_by_batch`) and Harmony on 50 principal
    components (:func:`cyto.analysis.harmony`, needs ``cyto[harmony]``).

    Also writes ``profiles.csv``: the per-protein mean encodings with ``Metadata_*``
    columns (protein, ground-truth labels, crop count), as pycytominer lays them out.

    Parameters
    ----------
    embeddings : path-like
        File written by ``cyto embed`` (its test split is evaluated when it has one).
    out_dir : path-like
        Folder of ``evaluation.json``, ``evaluation.md`` and ``profiles.csv`` (created).
    ground_truth, complexes : path-like, optional
        Tables read by :meth:`cyto.analysis.GroundTruth.read` (at least one).
    crops : path-like, optional
        The crop store (default: the one the embeddings file records, if it exists).
    batch_key : str, optional
        Per-crop column of the embeddings file (``plate``, ``well``...) to correct for.
    umap_seeds : sequence of int, default (0,)
    seed : int, default 0
        Seed of the permutation nulls and the hidden-protein draw.
    echo : callable, optional
        Receives progress lines (default: stderr).
    split : {"test", "all"}, default "test"
        Crops evaluated: the test split (an error when the file has none), or all.
    control : str, optional
        For a perturbation screen (``protein_id`` = the perturbation): the control
        perturbation (``DMSO``). Every representation is then also scored on well
        profiles (the mean of each well's crops) by the JUMP metrics: phenotypic
        activity (:func:`cyto.analysis.phenotypic_activity`: mAP and the fraction of
        perturbations active at q < 0.05) and consistency (perturbations of one MoA, the
        ground truth's family, :func:`cyto.analysis.phenotypic_consistency`).
    well_key : str, default "well"
        The per-crop column naming each crop's well (with ``control``).
    cellprofiler : bool, default False
        Also score CellProfiler features of every stain (cp-measure, the
        ``cellprofiler`` extra; :func:`cyto.analysis.cellprofiler_features`) as a
        baseline, when the crop store is found.
    corrections : sequence of {"center_scale", "harmony"}, default ("center_scale",)
        Batch corrections scored beside the uncorrected rows (with ``batch_key``).
    allow_degenerate : bool, default False
        Score even degenerate encodings (every crop alike); by default that is a
        :class:`~cyto.analysis.DegenerateEncodingError` (exit code 3).
    overwrite : bool, default False
        Replace a card cyto wrote earlier in ``out_dir`` (never another folder).

    Returns
    -------
    card : dict
        What ``evaluation.json`` holds: ``rows`` (one per representation × correction),
        ``ground_truth``, ``evaluated_on``, ``n_crops``, and per-row details.

    Raises
    ------
    ValueError
        Without a ground truth, or with an unknown ``batch_key``.
    """
    echo = echo or _print_stderr
    gt = GroundTruth.read(ground_truth, complexes)
    if not gt:
        raise ValueError("`ground_truth` or `complexes` is needed: the card scores against them")
    if split not in ("test", "all"):
        raise ValueError(f"`split` must be 'test' or 'all', got {split!r}")
    unknown = sorted(set(corrections) - set(CORRECTIONS))
    if unknown:
        raise ValueError(f"`corrections` must be names from {list(CORRECTIONS)}, got {unknown}")
    if "harmony" in corrections and batch_key is not None:
        from cyto._optional import require

        require("harmonypy", "harmony", purpose="Harmony batch correction")  # fail before work
    if cellprofiler:
        from cyto._optional import require

        require("cp_measure.bulk", "cellprofiler", purpose="CellProfiler features")
    inputs = [("the embeddings file", embeddings), ("the crop store", crops)]
    inputs += [("the ground truth", ground_truth), ("the complex table", complexes)]
    check_output(out_dir, "evaluation card", inputs=inputs, overwrite=overwrite)
    atlas = read_atlas(
        Path(embeddings),
        split=split,
        fit_split=None,
        max_points=None,
        local=False,
        reference=True,
        allow_degenerate=allow_degenerate,
        crops=crops,
    )
    batch = batch_column(atlas, batch_key) if batch_key is not None else None
    wells = well_column(atlas, well_key) if control is not None else None
    gt.check_covers(atlas.pids, f"{Path(embeddings).name} ({atlas.split_used} crops)")
    reps = {"cyto (global encodings)": atlas.X}
    if atlas.store is not None:
        crop_index = atlas.crop_index[atlas.rows]
        reps |= {
            f"baseline: {k}": v
            for k, v in _baseline_features(
                atlas.store, crop_index, cellprofiler=cellprofiler
            ).items()
        }
    else:
        echo("[evaluate] no crop store found: baselines left out (give --crops)")
    applied = ["none"] + (list(dict.fromkeys(corrections)) if batch_key is not None else [])
    screen = None if control is None else (wells, control)
    rows, details = _score(reps, applied, atlas, gt, batch, screen, umap_seeds, seed, echo)
    card = {
        "embeddings": Path(embeddings).name,
        "evaluated_on": atlas.split_used,
        "n_crops": len(atlas.X),
        "batch_key": batch_key,
        "ground_truth": gt.to_dict(),
        "rows": rows,
        "details": details,
    }
    with output_folder(out_dir, "evaluation card", inputs=inputs, overwrite=overwrite) as out:
        _atomic_json(out / CARD_FILES[0], card)
        write_text_atomic(out / CARD_FILES[1], card_markdown(card))
        _write_profiles(out / CARD_FILES[2], atlas.X, atlas.pids, gt)
    return card


def _fmt(x: Any, spec: str = ".3f") -> str:
    return "–" if x is None or not np.isfinite(x) else format(x, spec)


def card_markdown(card: dict[str, Any]) -> str:
    """The card as a Markdown table (one row per representation × correction)."""
    levels = sorted({lv for r in card["rows"] for lv in r["gamma"]})
    header = ["representation", "correction", *(f"Γ {lv}" for lv in levels)]
    header += ["family mAP (q<0.05)", "protein mAP", "complex recall (null)", "kNN cosine"]
    screen = any("activity_map" in r for r in card["rows"])
    if screen:
        header += ["activity mAP (active at q<0.05)", "consistency mAP"]
    lines = [
        f"Evaluation of {card['embeddings']} ({card['evaluated_on']} crops, n = "
        f"{card['n_crops']}); batch key: {card['batch_key'] or 'none'}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in card["rows"]:
        cells = [r["representation"], r["correction"]]
        cells += [
            f"{_fmt(r['gamma'].get(lv), '.2f')} ± {_fmt(r['gamma_sem'].get(lv), '.2f')}"
            for lv in levels
        ]
        cells += [
            f"{_fmt(r['family_map'])} ({_fmt(r['family_significant'], '.0%')})",
            _fmt(r["protein_map"]),
            f"{_fmt(r['complex_recall'], '.2f')} ({_fmt(r['complex_recall_null'], '.2f')})",
            _fmt(r["knn_cosine"]),
        ]
        if screen:
            cells += [
                f"{_fmt(r.get('activity_map'))} ({_fmt(r.get('activity_significant'), '.0%')})",
                _fmt(r.get("consistency_map")),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
