"""Figures of the paper (Figs. 2, 4, 5, 6) with matplotlib's object API (no pyplot, no display).

Every function returns a :class:`matplotlib.figure.Figure`; save it with
``fig.savefig("x.png")`` or :func:`save_figure`. matplotlib is imported lazily (the
``[plot]`` extra) and no global backend state is touched: figures are created with
``matplotlib.figure.Figure`` directly, which renders with Agg.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cyto._atomic import atomic_path
from cyto._optional import require
from cyto.analysis._palette import UNLABELLED_COLOR, categorical_colors
from cyto.analysis._validate import as_float_array, encode_labels

__all__ = [
    "family_colors",
    "plot_atlas",
    "plot_correlation_heatmap",
    "plot_crop_grid",
    "plot_difference_maps",
    "plot_family_spectra",
    "plot_localization",
    "plot_protein_highlights",
    "plot_scores",
    "plot_training_curves",
    "roman",
    "save_figure",
]


def _figure(width: float, height: float, **kwargs: Any) -> Any:
    mfig = require("matplotlib.figure", "plot", purpose="figures")
    return mfig.Figure(figsize=(width, height), layout="constrained", **kwargs)


def plot_crop_grid(
    images: Sequence[Sequence[np.ndarray | None]],
    titles: Sequence[Sequence[str]],
    row_labels: Sequence[str],
    *,
    scale_px: int | None = None,
    scale_label: str | None = None,
) -> Any:
    """A grid of single-channel crops: one row per group (e.g. feature cluster).

    Parameters
    ----------
    images : rows of (S, S) arrays or None
        The crops; None leaves a cell empty. Each crop is shown between its 1st and
        99.5th percentile.
    titles : rows of str
        A title per crop (e.g. its protein).
    row_labels : sequence of str
        A label per row.
    scale_px : int, optional
        Draw a scale bar this many pixels long in the first crop.
    scale_label : str, optional
        Its label (default ``"<scale_px> px"``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    n_rows, n = len(images), max((len(r) for r in images), default=0)
    fig = _figure(1.5 * n + 0.6, 1.6 * n_rows)
    first = True
    for c, row in enumerate(images):
        for k in range(n):
            ax = fig.add_subplot(n_rows, n, c * n + k + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            img = row[k] if k < len(row) else None
            if img is not None:
                lo, hi = np.percentile(img, [1, 99.5])
                ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
                ax.set_title(str(titles[c][k]), fontsize=6.5)
                if scale_px and first:
                    h, w = img.shape
                    y = h - 0.08 * h
                    ax.plot([0.06 * w, 0.06 * w + scale_px], [y, y], color="white", lw=2)
                    ax.text(
                        0.06 * w,
                        y - 0.04 * h,
                        scale_label or f"{scale_px} px",
                        color="white",
                        fontsize=6,
                        va="bottom",
                    )
                    first = False
            if k == 0:
                ax.set_ylabel(row_labels[c], rotation=0, ha="right", va="center")
    return fig


def plot_training_curves(
    epochs: Any, curves: Mapping[str, Mapping[str, Any]], *, best_epoch: int | None = None
) -> Any:
    """Training curves: one panel per quantity, train and validation per epoch.

    Parameters
    ----------
    epochs : (e,) array
        Epoch numbers (1-based for display).
    curves : mapping of str to mapping of str to (e,) array
        Panel title → series name (e.g. ``"train"``, ``"validation"``) → values (NaN
        where not recorded).
    best_epoch : int, optional
        Marked with a dotted line (the checkpoint used downstream).

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    panels = [(t, s) for t, s in curves.items() if s]
    fig = _figure(3.2 * max(len(panels), 1), 2.8)
    x = np.asarray(epochs, dtype=float)
    colors = categorical_colors(9)
    for j, (title, series) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), j + 1)
        for k, (name, values) in enumerate(series.items()):
            ax.plot(
                x,
                np.asarray(values, dtype=float),
                marker="o",
                ms=3,
                label=name,
                color=colors[(8, 4)[k % 2]],
            )
        if best_epoch is not None:
            ax.axvline(best_epoch, color="#777777", ls=":", lw=1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(frameon=False, fontsize=7)
    return fig


def roman(i: int) -> str:
    """Lower-case roman numeral of ``i + 1`` (feature clusters i, ii, iii, ... as in Fig. 4).

    Examples
    --------
    >>> [roman(i) for i in (0, 3, 8, 10)]
    ['i', 'iv', 'ix', 'xi']
    """
    n, out = int(i) + 1, ""
    for value, sym in (
        (1000, "m"),
        (900, "cm"),
        (500, "d"),
        (400, "cd"),
        (100, "c"),
        (90, "xc"),
        (50, "l"),
        (40, "xl"),
        (10, "x"),
        (9, "ix"),
        (5, "v"),
        (4, "iv"),
        (1, "i"),
    ):
        while n >= value:
            out += sym
            n -= value
    return out


def family_colors(families: Sequence[str]) -> dict[str, str]:
    """A distinct colour per family, sorted by name (:func:`categorical_colors`).

    Families next to each other in the sorted list get colours far apart (Kelly's
    colours of maximum contrast), so neighbouring legend entries never look alike.

    Examples
    --------
    >>> family_colors(["golgi", "er"])
    {'er': '#F3C300', 'golgi': '#875692'}
    """
    names = sorted({str(f) for f in families})
    return dict(zip(names, categorical_colors(len(names))))


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: int = 150) -> Path:
    """Save a figure atomically (temporary file, then rename); returns the path."""
    path = Path(path)
    with atomic_path(path, mkdir=True) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return path


def _scatter_by_label(ax: Any, Y: np.ndarray, labels: Any, colors: Mapping[str, Any], s: float):
    codes, classes = encode_labels(labels, Y.shape[0])
    grey = codes < 0
    ax.scatter(Y[grey, 0], Y[grey, 1], s=s, c=UNLABELLED_COLOR, linewidths=0, rasterized=True)
    handles = []
    # draw large classes first so small ones stay visible on top
    sizes = np.bincount(codes[~grey], minlength=classes.size)
    for j in np.argsort(-sizes, kind="stable"):
        sel = codes == j
        h = ax.scatter(
            Y[sel, 0],
            Y[sel, 1],
            s=s,
            color=colors[str(classes[j])],
            linewidths=0,
            label=f"{classes[j]} ({int(sizes[j])})",
            rasterized=True,
        )
        handles.append((str(classes[j]), h))
    handles.sort(key=lambda t: t[0])
    if grey.any():
        handles.append(
            (
                "unlabelled",
                ax.scatter(
                    [], [], s=s, c=UNLABELLED_COLOR, label=f"unlabelled ({int(grey.sum())})"
                ),
            )
        )
    return [h for _, h in handles]


def plot_atlas(
    embedding: Any,
    labels: Any,
    *,
    title: str = "Localization atlas",
    point_size: float | None = None,
    colors: Mapping[str, Any] | None = None,
) -> Any:
    """UMAP atlas coloured by localization family, unlabelled points grey (Fig. 2 style).

    Parameters
    ----------
    embedding : (n, 2) array_like
        UMAP coordinates, one point per crop.
    labels : (n,) array_like
        Family per point; ``None``, ``""``, NaN or -1 = unlabelled (drawn grey, below).
    title : str
        Axes title.
    point_size : float, optional
        Marker area; by default it shrinks with the number of points.
    colors : mapping of str to colour, optional
        Family → colour (default :func:`family_colors`).

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> Y = np.random.default_rng(0).normal(size=(50, 2))
    >>> fig = plot_atlas(Y, ["er"] * 25 + [None] * 25)  # doctest: +SKIP
    """
    Y = as_float_array(embedding, "embedding", ndim=2)
    if Y.shape[1] != 2:
        raise ValueError(f"`embedding` must have 2 columns (UMAP 1, UMAP 2), got shape {Y.shape}")
    _, classes = encode_labels(labels, Y.shape[0])
    colors = dict(colors) if colors is not None else family_colors([str(c) for c in classes])
    s = point_size if point_size is not None else float(np.clip(4e4 / max(Y.shape[0], 1), 1.0, 12))
    fig = _figure(8.5, 6.5)
    ax = fig.add_subplot()
    handles = _scatter_by_label(ax, Y, labels, colors, s)
    ax.set_title(title)
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    if handles:
        ax.legend(
            handles=handles,
            loc="center left",
            bbox_to_anchor=(1.01, 0.5),
            fontsize=8,
            markerscale=max(1.0, 6 / max(s, 1e-3)) ** 0.5,
            frameon=False,
        )
    return fig


def plot_protein_highlights(
    embedding: Any,
    protein_ids: Any,
    proteins: Sequence[str],
    *,
    labels: Any = None,
    ncols: int = 4,
) -> Any:
    """Small atlas panels, one per protein, with that protein's crops highlighted.

    Parameters
    ----------
    embedding : (n, 2) array_like
        UMAP coordinates.
    protein_ids : (n,) array_like of str
        Protein of every point.
    proteins : sequence of str
        Proteins to highlight (one panel each).
    labels : (n,) array_like, optional
        Family per point, named in each panel title.
    ncols : int, default 4
        Panels per row.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    Y = as_float_array(embedding, "embedding", ndim=2)
    ids = np.asarray(protein_ids).astype(str)
    if ids.shape != (Y.shape[0],):
        raise ValueError(f"`protein_ids` must have shape ({Y.shape[0]},), got {ids.shape}")
    if len(proteins) == 0:
        raise ValueError("`proteins` must name at least one protein")
    lab = None if labels is None else np.asarray(labels, dtype=object)
    ncols = max(1, min(int(ncols), len(proteins)))
    nrows = -(-len(proteins) // ncols)
    fig = _figure(2.6 * ncols, 2.6 * nrows)
    s_bg = float(np.clip(500 / max(Y.shape[0], 1), 0.2, 6))
    for k, protein in enumerate(proteins):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        sel = ids == str(protein)
        ax.scatter(Y[:, 0], Y[:, 1], s=s_bg, c=UNLABELLED_COLOR, linewidths=0, rasterized=True)
        ax.scatter(Y[sel, 0], Y[sel, 1], s=max(4 * s_bg, 4), c="#d62728", linewidths=0)
        family = None
        if lab is not None and sel.any():
            family = lab[np.flatnonzero(sel)[0]]
        ax.set_title(
            f"{protein}" + (f"\n{family}" if family else "") + f" (n={int(sel.sum())})", fontsize=9
        )
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal", adjustable="datalim")
    return fig


def _cluster_colors(n: int) -> list[str]:
    return categorical_colors(n)


def _rgb(color: str) -> tuple[float, float, float]:
    """``#RRGGBB`` as RGB floats in [0, 1]."""
    return tuple(int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def _cluster_bar(ax: Any, labels_in_order: np.ndarray, n_clusters: int) -> None:
    colors = _cluster_colors(n_clusters)
    rgb = np.array([_rgb(colors[c]) for c in labels_in_order])[None]
    ax.imshow(rgb, aspect="auto", interpolation="nearest")
    ax.set_yticks([])
    ax.set_xticks([])
    edges = np.flatnonzero(np.diff(labels_in_order)) + 1
    starts = np.r_[0, edges]
    stops = np.r_[edges, labels_in_order.size]
    narrow = 0
    for a, b in zip(starts, stops):
        label = roman(labels_in_order[a])
        if b - a >= labels_in_order.size / 40:
            ax.text((a + b - 1) / 2, 0, label, ha="center", va="center", fontsize=8)
        else:  # too narrow to hold its numeral: below the bar, staggered
            narrow += 1
            y = 1.0 + 0.9 * (narrow % 2)
            ax.text((a + b - 1) / 2, y, label, ha="center", va="top", fontsize=6, clip_on=False)


def plot_correlation_heatmap(corr: Any, biclusters: Any, *, title: str = "Code correlation") -> Any:
    """Biclustered code-correlation heatmap with the feature-cluster bar below (Fig. 4a).

    Parameters
    ----------
    corr : (K, K) array_like
        Correlation matrix from :func:`~cyto.analysis.code_correlation`.
    biclusters : Biclusters
        From :func:`~cyto.analysis.bicluster`; gives the order and the clusters.
    title : str
        Figure title.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    C = np.asarray(corr, dtype=float)
    order = np.asarray(biclusters.order)
    if C.ndim != 2 or C.shape != (order.size, order.size):
        raise ValueError(f"`corr` shape {C.shape} does not match {order.size} biclustered codes")
    fig = _figure(7.0, 7.6)
    gs = fig.add_gridspec(2, 2, height_ratios=[20, 1], width_ratios=[30, 1])
    ax = fig.add_subplot(gs[0, 0])
    im = ax.imshow(
        C[np.ix_(order, order)],
        cmap="RdBu_r",
        vmin=-1,
        vmax=1,
        interpolation="nearest" if order.size <= 512 else "antialiased",
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    ax.set_ylabel(f"codes ({order.size}, biclustered)")
    fig.colorbar(im, cax=fig.add_subplot(gs[0, 1]), label="Pearson r")
    bar = fig.add_subplot(gs[1, 0])
    _cluster_bar(bar, np.asarray(biclusters.labels)[order], int(biclusters.n_clusters))
    bar.set_xlabel("feature clusters")
    return fig


def plot_family_spectra(
    families: Sequence[str],
    spectra: Any,
    biclusters: Any,
    *,
    title: str = "Feature spectra per localization family",
) -> Any:
    """Mean feature spectrum of each family, codes in biclustered order (Fig. 4b).

    Parameters
    ----------
    families : sequence of str
        Family names (rows of ``spectra``).
    spectra : (F, K) array_like
        Mean spectrum per family (e.g. from :func:`~cyto.analysis.mean_by_label`).
    biclusters : Biclusters
        Code order and feature clusters (shaded in the background).
    title : str
        Figure title.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    S = as_float_array(spectra, "spectra", ndim=2)
    order = np.asarray(biclusters.order)
    if S.shape != (len(families), order.size):
        raise ValueError(
            f"`spectra` must have shape ({len(families)}, {order.size}), got {S.shape}"
        )
    labels_in_order = np.asarray(biclusters.labels)[order]
    colors = _cluster_colors(int(biclusters.n_clusters))
    n = max(len(families), 1)
    fig = _figure(9.0, 0.75 * n + 1.2)
    axes = fig.subplots(
        n + 1, 1, sharex=True, gridspec_kw={"height_ratios": [3] * n + [1]}, squeeze=False
    )[:, 0]
    x = np.arange(order.size)
    edges = np.r_[0, np.flatnonzero(np.diff(labels_in_order)) + 1, order.size]
    for ax, name, row in zip(axes, families, S):
        for a, b in itertools.pairwise(edges):
            ax.axvspan(a - 0.5, b - 0.5, color=colors[labels_in_order[a]], alpha=0.15, lw=0)
        ax.fill_between(x, row[order], step="mid", color="#333333", lw=0)
        ax.set_ylabel(str(name), rotation=0, ha="right", va="center", fontsize=8)
        ax.set_yticks([])
        ax.set_xlim(-0.5, order.size - 0.5)
        ax.set_ylim(0, max(float(row.max()), 1e-9) * 1.05)
    axes[0].set_title(title)
    _cluster_bar(axes[-1], labels_in_order, int(biclusters.n_clusters))
    axes[-1].set_xlabel("codes (biclustered order); height = occurrences per image")
    return fig


def plot_difference_maps(
    images: Any,
    differences: Any,
    *,
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    threshold: float | None = None,
    channel: int = 0,
) -> Any:
    """Ablation difference maps highlighted in red over the crops (Fig. 5).

    Parameters
    ----------
    images : (n, H, W), (n, C, H, W) or (H, W) array_like
        The crops or their normal reconstructions (e.g. ``CodeAblation.reconstruction``
        of :func:`cyto.nn.ablate_codes`). A single (H, W) image is repeated for every
        difference map.
    differences : (n, H, W) or (n, C, H, W) array_like
        ``normal - ablated`` reconstruction per panel (e.g. ``CodeAblation.difference``,
        or one crop's maps across clusters, ``ClusterAblation.difference[:, i]``).
    titles : sequence of str, optional
        Panel titles (e.g. the zeroed code or feature cluster).
    ncols : int, default 4
        Panels per row.
    threshold : float, optional
        Absolute differences below it are transparent; default: the 50th percentile of
        the absolute differences.
    channel : int, default 0
        Channel shown when the inputs have a channel axis (0 = protein).

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    D = as_float_array(differences, "differences")
    img = as_float_array(images, "images")
    if D.ndim == 4:
        if not 0 <= channel < D.shape[1]:
            raise ValueError(f"`channel` must be in [0, {D.shape[1]}), got {channel}")
        D = D[:, channel]
    if img.ndim == 4:
        img = img[:, channel]
    if D.ndim == 2:
        D = D[None]
    if D.ndim != 3:
        raise ValueError(f"`differences` must be (n, H, W) or (n, C, H, W), got shape {D.shape}")
    if img.ndim == 2:
        img = np.broadcast_to(img, D.shape)
    if img.shape != D.shape:
        raise ValueError(f"`images` shape {img.shape} does not match `differences` {D.shape}")
    if titles is not None and len(titles) != D.shape[0]:
        raise ValueError(f"`titles` has {len(titles)} entries for {D.shape[0]} maps")
    mag = np.abs(D)
    vmax = float(mag.max()) or 1.0
    thr = float(np.percentile(mag, 50)) if threshold is None else float(threshold)
    n = D.shape[0]
    ncols = max(1, min(int(ncols), n))
    nrows = -(-n // ncols)
    fig = _figure(2.4 * ncols, 2.5 * nrows)
    for k in range(n):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        lo, hi = np.percentile(img[k], [1, 99.5])
        ax.imshow(img[k], cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
        overlay = np.zeros((*D.shape[1:], 4))
        overlay[..., 0] = 1.0
        overlay[..., 3] = np.where(mag[k] > thr, np.clip(mag[k] / vmax, 0, 1), 0.0) * 0.85
        ax.imshow(overlay)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(str(titles[k]), fontsize=9)
    return fig


def plot_scores(
    table: Any,
    *,
    title: str = "Clustering score",
    baselines: Mapping[str, Mapping[str, float]] | None = None,
) -> Any:
    """Bar chart of clustering scores, mean ± s.e.m. per variant and level (Fig. 6).

    Parameters
    ----------
    table : ScoreTable
        From :func:`~cyto.analysis.clustering_score_table`.
    title : str
        Axes title.
    baselines : mapping of str to mapping of str to float, optional
        Scores of model-free baselines per level (e.g. ``{"pixels": {"organelle":
        2.3}}``), drawn as hatched bars after the variants.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    variants, levels = list(table.variants), list(table.levels)
    mean = np.asarray(table.mean, dtype=float)
    sem = np.nan_to_num(np.asarray(table.sem, dtype=float))
    n_model = len(variants)
    for name, per_level in (baselines or {}).items():
        variants.append(f"baseline: {name}")
        row = [float(per_level.get(lv, np.nan)) for lv in levels]
        mean = np.vstack([mean, row])
        sem = np.vstack([sem, np.zeros(len(levels))])
    # about 0.55 in per bar, at most 13 in: ten variants × two levels stay readable
    fig = _figure(min(13.0, max(4.0, 0.55 * len(variants) * max(len(levels), 1) + 2.0)), 4.2)
    ax = fig.add_subplot()
    width = 0.8 / max(len(levels), 1)
    x = np.arange(len(variants))
    colors = categorical_colors(max(len(levels), 1))
    for j, level in enumerate(levels):
        pos = x + (j - (len(levels) - 1) / 2) * width
        ax.bar(
            pos[:n_model],
            mean[:n_model, j],
            width,
            yerr=sem[:n_model, j],
            capsize=3,
            label=level,
            color=colors[j],
        )
        if len(variants) > n_model:
            ax.bar(
                pos[n_model:],
                mean[n_model:, j],
                width,
                color=colors[j],
                alpha=0.45,
                hatch="//",
                edgecolor="#555555",
                linewidth=0.5,
            )
    if len(variants) > n_model:
        ax.axvline(n_model - 0.5, color="#999999", lw=0.8, ls=":")
    ax.set_xticks(
        x,
        variants,
        rotation=20 if len(variants) > 3 else 0,
        ha="right" if len(variants) > 3 else "center",
    )
    ax.set_ylabel("clustering score Γ")
    ax.set_title(title)
    ax.legend(title="ground truth", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_ylim(0, float(np.nanmax(mean + sem)) * 1.15 if np.isfinite(mean).any() else 1.0)
    return fig


def plot_localization(ranking: Sequence[tuple[str, float]], *, protein: str = "") -> Any:
    """Correlation of one protein's spectrum with each family's (Fig. 4e).

    Parameters
    ----------
    ranking : sequence of (str, float)
        Output of :func:`~cyto.analysis.localize`.
    protein : str
        Name shown in the title.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    if len(ranking) == 0:
        raise ValueError("`ranking` is empty")
    names = [n for n, _ in ranking][::-1]
    vals = np.array([r for _, r in ranking], dtype=float)[::-1]
    fig = _figure(4.5, 0.3 * len(names) + 1.0)
    ax = fig.add_subplot()
    ax.barh(
        names,
        np.nan_to_num(vals),
        color=["#d62728" if i == len(names) - 1 else "#7f7f7f" for i in range(len(names))],
    )
    ax.set_xlabel("Pearson r with family spectrum")
    ax.set_title(f"{protein} localization" if protein else "localization")
    return fig
