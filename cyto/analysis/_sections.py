"""The report's sections, each a function returning its content ``(heading, items)``: the
atlas, the clustering score, retrieval, batch correction, hidden proteins, feature spectra
and feature interpretation. A section writes its figures and files through the
:class:`~cyto.analysis._page.ReportFiles` it is given and returns any value the summary
keeps; it holds no state of its own."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from cyto.analysis import _figures as figs
from cyto.analysis._evaluate import Evaluation
from cyto.analysis._explorer_data import CodeClusters, code_clusters
from cyto.analysis._ground_truth import GroundTruth
from cyto.analysis._page import ReportFiles
from cyto.analysis._profiles import CORRECTIONS
from cyto.analysis._reading import AtlasInput, batch_column
from cyto.analysis._score import ScoreTable
from cyto.analysis._spectra import (
    FeatureSpectra,
    _loo_localization_accuracy,
    cluster_shares,
    localize,
    mean_by_label,
    representative_images,
)

#: A page section: its heading and its items (see :func:`~cyto.analysis.write_report`).
Section = tuple[str, list[Any]]

#: The batch correction the report's batch section applies (a name in ``CORRECTIONS``).
REPORT_CORRECTION = "center_scale"


# --------------------------------------------------------------------------- text helpers
def _num(x: Any, spec: str) -> str:
    return "–" if x is None or not np.isfinite(x) else format(x, spec)


def _mean_sem_text(d: Mapping[str, Any] | None) -> str:
    """``mean ± sem`` of a :func:`mean_sem` dict or score record ("–" when absent)."""
    if not d:
        return "–"
    sem = d.get("sem")
    return _num(d.get("mean"), ".2f") + ("" if sem is None else f" ± {_num(sem, '.2f')}")


def _retrieval_cells(r: Mapping[str, Any]) -> list[str]:
    """Table cells of :func:`retrieval_scores`: protein mAP, family mAP, complex recall."""
    cells = []
    for key in ("protein", "family"):
        m = r.get(key)
        cells.append(
            "–" if not m else f"{_num(m['map'], '.3f')} ({_num(m['fraction_significant'], '.0%')})"
        )
    c = r.get("complex")
    cells.append(
        "–" if not c else f"{_num(c['recall'], '.2f')} (null {_num(c['null_mean'], '.2f')})"
    )
    return cells


def _ground_truth_text(gt: GroundTruth) -> str:
    """What each level holds and what it leaves out, in a sentence per level."""
    out = []
    for lv, labels in gt.levels.items():
        ex = gt.excluded.get(lv, {})
        text = f"Level '{lv}': {len(labels)} proteins in {len(set(labels.values()))} classes"
        if ex:
            first = next(iter(ex.items()))
            text += f"; {len(ex)} left out (e.g. {first[0]}: {first[1]})"
        out.append(text + ".")
    return " ".join(out)


def _default_highlight(pids: np.ndarray, fam_map: Mapping[str, str]) -> list[str]:
    """The most imaged protein of each of up to 8 families (of 8 proteins without one)."""
    order = np.unique(pids, return_counts=True)
    by_count = order[0][np.argsort(-order[1], kind="stable")]
    chosen, seen = [], set()
    for p in by_count:
        fam = fam_map.get(p)
        if fam_map and (fam is None or fam in seen):
            continue
        chosen.append(str(p))
        seen.add(fam)
        if len(chosen) == 8:
            break
    return chosen


# --------------------------------------------------------------------------- sections
def atlas_section(
    atlas: AtlasInput,
    Y: np.ndarray,
    color_labels: np.ndarray,
    family_level: str | None,
    fam_map: Mapping[str, str],
    highlight: Sequence[str] | None,
    files: ReportFiles,
) -> Section:
    """The atlas UMAP coloured by family, and the highlighted proteins' crops.

    Parameters
    ----------
    atlas : AtlasInput
    Y : (n, 2) array
        Atlas coordinates of the atlas rows.
    color_labels : (n,) object array
        Family of every atlas crop (None: unlabelled).
    family_level : str or None
        The ground-truth level coloured by (None without ground truth).
    fam_map : mapping of str to str
        Family of each protein.
    highlight : sequence of str or None
        Proteins shown one by one (default: :func:`_default_highlight`).
    files : ReportFiles
        Where the figures go.

    Returns
    -------
    section : (heading, items)
    """
    rows, split_used = atlas.rows, atlas.split_used
    pids = atlas.pids
    title = f"Localization atlas — {atlas.variant} ({split_used}, {rows.size} crops)"
    items: list[Any] = [
        f"UMAP of the global encodings of {rows.size} crops (split '{split_used}'), coloured "
        f"by {family_level or 'nothing (no ground truth given)'}; unlabelled crops are grey.",
        files.figure("atlas", figs.plot_atlas(Y, color_labels, title=title)),
    ]
    if highlight is None:
        highlight = _default_highlight(pids, fam_map)
    highlight = [p for p in highlight if p in set(pids.tolist())]
    if highlight:
        fig = figs.plot_protein_highlights(Y, pids, highlight, labels=color_labels)
        items += [
            "Crops of single proteins highlighted in the atlas:",
            files.figure("highlights", fig),
        ]
    return ("Localization atlas", items)


def score_section(
    table: ScoreTable, ev: Evaluation, gt: GroundTruth, n_seeds: int, files: ReportFiles
) -> Section:
    """Γ per variant and level beside the baselines (a table and a bar chart), k-NN accuracy.

    Parameters
    ----------
    table : ScoreTable
    ev : Evaluation
        The first variant's evaluation (k-NN accuracy, baselines).
    gt : GroundTruth
    n_seeds : int
        UMAP seeds the scores are averaged over.
    files : ReportFiles

    Returns
    -------
    section : (heading, items)
    """
    rows = [
        [f"cyto: {r['variant']}", r["level"], _mean_sem_text(r), r["n"]] for r in table.to_records()
    ]
    rows += [
        [f"baseline: {name}", lv, _mean_sem_text(s), len(s.get("values", []))]
        for name, per_level in ev.baselines.items()
        for lv, s in per_level.items()
        if lv != "retrieval"
    ]
    items: list[Any] = [
        "Γ = spread of the class centroids / median class size (robust statistics, "
        f"Kobayashi et al. 2022), mean ± s.e.m. over {n_seeds} UMAP "
        "seed(s); higher is better. " + _ground_truth_text(gt),
        {"header": ["representation", "level", "Γ", "n"], "rows": rows},
    ]
    if ev.knn:
        items.append(
            "k-nearest-neighbour (k = 15) family accuracy of these crops' global "
            "encodings, fit on the training crops: "
            + ", ".join(f"{_num(v, '.3f')} ({m})" for m, v in ev.knn.items())
            + "."
        )
    base = {
        name: {lv: s["mean"] for lv, s in per_level.items() if lv != "retrieval"}
        for name, per_level in ev.baselines.items()
    }
    fig = figs.plot_scores(table, baselines=base)
    items += [
        "Figure: Γ of the model (solid bars, mean ± s.e.m. over the UMAP seeds) next to "
        "the model-free baselines on the same crops (hatched): raw pixels and intensity "
        "statistics. The model learned something beyond them where its bar is taller.",
        files.figure("clustering_scores", fig),
    ]
    return ("Clustering score", items)


def no_score_section(ev: Evaluation) -> Section:
    """The "Clustering score" section when no score was computed: why not."""
    why = "; ".join(ev.notes) or "no ground truth was given (ground_truth / complexes)"
    return ("Clustering score", [f"Clustering scores not computed: {why}."])


def retrieval_section(variant: str, ev: Evaluation) -> Section:
    """mAP (protein consistency, family retrieval) and complex recall, model and
    baselines side by side.

    Parameters
    ----------
    variant : str
        The model variant's name.
    ev : Evaluation

    Returns
    -------
    section : (heading, items)
    """
    reps = [(f"cyto: {variant}", ev.retrieval)] + [
        (f"baseline: {n}", b.get("retrieval", {})) for n, b in ev.baselines.items()
    ]
    rows = [[name, *_retrieval_cells(r)] for name, r in reps if r]
    return (
        "Retrieval (mAP)",
        [
            "Mean average precision as the image-based profiling field computes it "
            "(copairs' definitions, cosine similarity): protein — each crop "
            "retrieving the other crops of its protein; family — each "
            "protein's mean profile retrieving the proteins of its family; in "
            "brackets the fraction of groups with q < 0.05 (permutation p-values, "
            "Benjamini–Hochberg). Complex recall: fraction of complex members whose "
            "5 nearest proteins include another member (null: labels shuffled).",
            {
                "header": ["representation", "protein mAP", "family mAP", "complex recall"],
                "rows": rows,
            },
        ],
    )


def batch_section(
    atlas: AtlasInput,
    ev: Evaluation,
    key: str,
    evaluate: Callable[[AtlasInput], Evaluation],
) -> tuple[Section, dict[str, Any]]:
    """The model's scores before and after per-batch centring and scaling.

    Parameters
    ----------
    atlas : AtlasInput
    ev : Evaluation
        The uncorrected evaluation.
    key : str
        Per-crop column of the embeddings file naming the batches.
    evaluate : callable
        Evaluates an :class:`AtlasInput` (the corrected encodings) as ``ev`` was.

    Returns
    -------
    section : (heading, items)
    corrected : dict
        ``{"batch_key": key, **evaluation}`` of the corrected encodings (for the summary).
    """
    batch = batch_column(atlas, key)
    X = CORRECTIONS[REPORT_CORRECTION](atlas.X, batch)
    fixed = evaluate(replace(atlas, X=X, X_fit=None, reference=None))
    levels = list(ev.scores)
    rows = [
        [
            name,
            *(_mean_sem_text(e.scores.get(lv)) for lv in levels),
            *_retrieval_cells(e.retrieval),
        ]
        for name, e in (("none", ev), (f"per-{key} centring and scaling", fixed))
    ]
    header = ["correction", *(f"Γ {lv}" for lv in levels)]
    header += ["protein mAP", "family mAP", "complex recall"]
    n = len(set(batch.tolist()))
    section = (
        f"Batch correction ({key})",
        [
            f"The model's encodings scored as they are and after centring and scaling "
            f"every feature within each {key} ({n} values among these crops).",
            {"header": header, "rows": rows},
        ],
    )
    return section, {"batch_key": key, **fixed.to_dict()}


def hidden_section(ev: Evaluation) -> Section:
    """The hidden proteins (one per family) and the families their spectra point to.

    Parameters
    ----------
    ev : Evaluation

    Returns
    -------
    section : (heading, items)
    """
    rows = []
    for r in ev.hidden:
        hit = "yes" if r["hit"] else "no"
        rows.append([r["protein"], r["true"], r["predicted"], r["r"], hit, ", ".join(r["top3"])])
    return (
        "Localization of hidden proteins",
        [
            "One protein per family had its family hidden; its feature spectrum was "
            "ranked against the consensus spectra of the other proteins of each "
            f"family. Hit rate: {_num(ev.hidden_hit_rate, '.0%')}.",
            {
                "header": ["protein", "true family", "predicted", "r", "hit", "top 3"],
                "rows": rows,
            },
        ],
    )


class SpectraSection(NamedTuple):
    """What :func:`spectra_section` returns: the section, the values the summary keeps
    (``codes_used``, ``feature_clusters``, ``localization_accuracy_loo``) and the feature
    clusters (None when fewer than two codes vary)."""

    section: Section
    summary: dict[str, Any]
    clusters: CodeClusters | None


def spectra_section(
    atlas: AtlasInput,
    spec: FeatureSpectra,
    fam_map: Mapping[str, str],
    *,
    n_clusters: int,
    crops: Any,
    files: ReportFiles,
) -> SpectraSection:
    """Feature spectra: the code correlation and its feature clusters, representative
    crops, family spectra and each protein's best-correlated families.

    Parameters
    ----------
    atlas : AtlasInput
        The file's local codes, crop store and proteins.
    spec : FeatureSpectra
        Per-protein spectra of every crop of the file.
    fam_map : mapping of str to str
        Family of each protein.
    n_clusters : int
        Top-level feature clusters.
    crops : path-like or None
        A crop store to show instead of ``atlas.store``.
    files : ReportFiles
        Where ``feature_clusters.csv``, ``spectra.npz``, ``localization.csv`` and the
        figures go.

    Returns
    -------
    result : SpectraSection
    """
    items: list[Any] = []
    summary: dict[str, Any] = {}
    clusters = None
    if spec.groups.size >= 2:
        used = np.flatnonzero(spec.spectra.std(axis=0) > 0)
        summary["codes_used"] = int(used.size)
        items.append(
            f"{spec.groups.size} proteins; {used.size} of {atlas.num_codes} local codes vary "
            "between proteins (the others are never used or constant and are left out)."
        )
        clusters = code_clusters(spec, n_clusters)
    if clusters is not None:
        items += _feature_clusters(spec, clusters, files)
        summary["feature_clusters"] = int(clusters.biclusters.n_clusters)
        items += _representatives(atlas, clusters, crops, fam_map, files)
        family_items, family_summary = _family_spectra(spec, clusters, fam_map, files)
        items += family_items
        summary |= family_summary
    return SpectraSection(("Feature spectra", items), summary, clusters)


def _feature_clusters(spec: FeatureSpectra, cl: CodeClusters, files: ReportFiles) -> list[Any]:
    """``feature_clusters.csv``, ``spectra.npz`` and the heatmap of the code correlation."""
    used, bic = cl.used, cl.biclusters
    files.csv(
        "feature_clusters.csv",
        ["code", "cluster", "position"],
        [
            [int(used[j]), figs.roman(int(bic.labels[j])), int(pos)]
            for pos, j in enumerate(bic.order)
        ],
    )
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        proteins=spec.groups.astype(str),
        spectra=spec.spectra,
        n_images=spec.n_images,
        codes_used=used,
        correlation=cl.correlation,
        order=cl.order,
        clusters=cl.cluster_of_code,
    )
    files.data("spectra.npz", buf.getvalue())
    return [
        "Figure: correlation between the local codes across proteins (red: two codes "
        "are used by the same proteins; blue: by different ones), codes ordered by "
        "hierarchical clustering; the bar below splits them into feature clusters "
        "(roman numerals), groups of codes that describe one kind of pattern (Fig. 4a).",
        files.figure("code_correlation", figs.plot_correlation_heatmap(cl.correlation, bic)),
    ]


def _representatives(
    atlas: AtlasInput,
    cl: CodeClusters,
    crops: Any,
    fam_map: Mapping[str, str],
    files: ReportFiles,
) -> list[Any]:
    """The crops that best represent each feature cluster: a table and, with a store, images."""
    pids_all, crop_index, k = atlas.pids_all, atlas.crop_index, cl.biclusters.n_clusters
    code_cluster = cl.cluster_of_code
    lut = np.where(code_cluster >= 0, code_cluster, k)
    picks = representative_images(atlas.local_idx, lut, n=4, groups=pids_all)[:k]
    share = cluster_shares(atlas.local_idx, lut, k + 1)
    rows = []
    for c in range(k):
        crops_c = [
            f"{pids_all[i]} #{int(crop_index[i])} ({share[i, c]:.0%})" for i in picks[c] if i >= 0
        ]
        users = int((share[:, c] >= 0.1).sum())
        rows.append([figs.roman(c), int((code_cluster == c).sum()), users, *crops_c])
    header = ["feature cluster", "codes", "crops using it (≥ 10% of codes)"]
    header += ["representative crops (protein #crop, share of its codes)", "", "", ""]
    items: list[Any] = [{"header": header, "rows": rows}]
    fig = _representative_crops(
        crops, atlas.store, crop_index, picks, pids_all, figs, fam_map or {}, share
    )
    if fig is not None:
        items += [
            "Figure: for each feature cluster, the crops of different proteins whose "
            "local codes fall most often into it (protein channel; title: protein, "
            "family, share of the crop's codes in the cluster). A crop appears for one "
            "cluster only; clusters with few codes may have few crops that use them.",
            files.figure("representative_crops", fig),
        ]
    return items


def _family_spectra(
    spec: FeatureSpectra, cl: CodeClusters, fam_map: Mapping[str, str], files: ReportFiles
) -> tuple[list[Any], dict[str, Any]]:
    """Family consensus spectra and each protein's best-correlated families; the items
    and ``{"localization_accuracy_loo": ...}`` (empty when no protein has a family)."""
    used = cl.used
    fam_per_protein = np.array([fam_map.get(str(p)) for p in spec.groups], dtype=object)
    if sum(v is not None for v in fam_per_protein) < 1:
        return [], {}
    fams, fam_spectra = mean_by_label(spec.spectra, fam_per_protein)
    fig = figs.plot_family_spectra([str(x) for x in fams], fam_spectra[:, used], cl.biclusters)
    items: list[Any] = [
        "Figure: the feature spectrum of each family — how often its proteins' crops "
        "use each local code, codes in the order of the heatmap above, shaded by "
        "feature cluster. Families differ in which clusters they use (Fig. 4b).",
        files.figure("family_spectra", fig),
    ]
    acc = _loo_localization_accuracy(spec.spectra[:, used], fam_per_protein)
    if acc is not None:
        items.append(
            f"Leave-one-out localization from spectra: the best-correlated family "
            f"spectrum is the annotated one for {100 * acc:.1f}% of the annotated "
            "proteins."
        )
    family_dict = {str(n): s[used] for n, s in zip(fams, fam_spectra)}
    loc_rows = []
    for p, s, fam in zip(spec.groups, spec.spectra, fam_per_protein):
        ranking = localize(s[used], family_dict)[:3]
        loc_rows.append([str(p), fam or "", *[f"{n} ({r:.2f})" for n, r in ranking]])
    files.csv("localization.csv", ["protein_id", "annotated", "best", "second", "third"], loc_rows)
    unknown = [r for r in loc_rows if not r[1]]
    if unknown:
        items += [
            "Proteins without annotation, ranked by the "
            "correlation of their spectrum with each family's:",
            {
                "header": ["protein", "best", "second", "third"],
                "rows": [[r[0], *r[2:]] for r in unknown[:50]],
            },
        ]
        top = unknown[0][0]
        ranking = localize(spec[top][used], family_dict)
        items += [
            f"Figure: {top}, a protein without annotation: the correlation of its "
            "spectrum with each family's; the tallest bar is its most likely "
            "localization (the paper's FAM241A analysis).",
            files.figure("localization_example", figs.plot_localization(ranking, protein=top)),
        ]
    return items, {"localization_accuracy_loo": acc}


def _representative_crops(
    crops: Any,
    store_attr: Any,
    crop_index: np.ndarray,
    picks: np.ndarray,
    pids: np.ndarray,
    figs: Any,
    fam_map: Mapping[str, str],
    share: np.ndarray,
) -> Any:
    """Grid of representative crops (protein channel) per feature cluster, if a store
    exists (a figure, else None): titles name protein, family and the cluster's share."""
    path = Path(crops) if crops is not None else (Path(str(store_attr)) if store_attr else None)
    if path is None or not path.is_file():
        if crops is not None:
            raise FileNotFoundError(f"crop store not found: {path}")
        return None
    from cyto.data import CropStore

    wanted = np.unique(crop_index[picks[picks >= 0]])
    with CropStore(path) as store:
        pixels = store.read(wanted)[:, 0].astype(np.float32)
    images = dict(zip(wanted.tolist(), pixels))
    grid = [[images[int(crop_index[i])] if i >= 0 else None for i in row] for row in picks]
    titles = [
        [
            f"{pids[i]} · {fam_map.get(str(pids[i]), '?')}\n{share[i, c]:.0%} of codes"
            if i >= 0
            else ""
            for i in row
        ]
        for c, row in enumerate(picks)
    ]
    labels = [figs.roman(c) for c in range(picks.shape[0])]
    side = next((x.shape[0] for row in grid for x in row if x is not None), 0)
    bar = max(5, int(round(side / 5, -1))) if side else None
    return figs.plot_crop_grid(grid, titles, labels, scale_px=bar)


def _ablation_maps(ablation: Any) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Difference maps, their images and titles from a feature-ablation output."""
    data = ablation if isinstance(ablation, Mapping) else np.load(ablation, allow_pickle=False)
    data = dict(data)
    key = next((k for k in ("differences", "difference") if k in data), None)
    if key is None:
        raise ValueError(
            f"`ablation` must provide 'differences' (n, H, W) or (n, C, H, W); got {sorted(data)}"
        )
    diffs = np.asarray(data[key])
    img_key = next((k for k in ("images", "reconstruction") if k in data), None)
    images = np.asarray(data[img_key]) if img_key else np.zeros(diffs.shape[-2:])
    titles = [str(t) for t in data["titles"]] if "titles" in data else None
    return diffs, images, titles


def ablation_section(ablation: Any, files: ReportFiles) -> Section:
    """Feature interpretation: the difference maps of a feature ablation (Fig. 5).

    Parameters
    ----------
    ablation : path-like or mapping
        See :func:`~cyto.analysis.analyze_embeddings`.
    files : ReportFiles

    Returns
    -------
    section : (heading, items)
    """
    diffs, images, titles = _ablation_maps(ablation)
    fig = figs.plot_difference_maps(images, diffs, titles=titles)
    return (
        "Feature interpretation",
        [
            "Difference between the normal and the ablated reconstruction (red) when one "
            "code or feature cluster is zeroed before decoding (Fig. 5).",
            files.figure("difference_maps", fig),
        ],
    )


def screen_section(atlas: AtlasInput, gt: GroundTruth, control: str) -> tuple[Section, dict]:
    """A perturbation screen's JUMP metrics on well profiles of the encodings (``plate/well``
    wells): phenotypic activity against the ``control`` wells and, with MoAs in the
    ground truth's family level, phenotypic consistency; the section and its numbers."""
    from cyto.analysis._activity import screen_metrics
    from cyto.analysis._reading import well_column

    X, corrected = atlas.X, False
    try:  # per-plate centring and scaling first: same-plate wells must not look alike
        plates = batch_column(atlas, "plate")
        if len(set(plates.tolist())) > 1:
            X, corrected = CORRECTIONS[REPORT_CORRECTION](X, plates), True
    except ValueError:  # no plate column
        pass
    moa = {p: m for p, m in gt.family_of().items() if m is not None}
    m = screen_metrics(X, atlas.pids, well_column(atlas), control=control, moa=moa)
    act, active = m["activity"], m["active"]
    found = {k: m[k] for k in ("activity_map", "fraction_active", "active", "n_wells")}
    found |= {"plate_corrected": corrected, "consistency_map": m["consistency_map"]}
    rows = [[g["label"], moa.get(g["label"], "–"), _num(g["map"], ".3f"),
             _num(g["q_value"], ".3g"), "yes" if g["q_value"] < 0.05 else "no"]
            for g in sorted(act["groups"], key=lambda g: g["q_value"])]  # fmt: skip
    items: list[Any] = [
        f"Well profiles (the mean encoding of each well's crops, {m['n_wells']} wells"
        f"{', after per-plate centring and scaling' if corrected else ''}). "
        f"Phenotypic activity: each perturbation's replicate wells ranked among the "
        f"{act['n_controls']} {control} wells (copairs' mAP, permutation p-values, "
        f"Benjamini–Hochberg q-values): mAP {_num(act['map'], '.3f')}, "
        f"{len(active)} of {act['n_perturbations']} perturbations active at q < 0.05. "
        f"Phenotypic consistency (perturbations of one MoA retrieving each other): mAP "
        f"{_num(found['consistency_map'], '.3f')}.",
        {"header": ["perturbation", "MoA", "activity mAP", "q", "active"], "rows": rows},
    ]
    return ("Perturbation screen (JUMP metrics)", items), found
