"""The interactive atlas: one self-contained HTML file (WebGL scatter, crops on hover).

Arrays in, one file out. :func:`write_explorer` embeds everything the page shows —
point positions, colourings, a sampled thumbnail atlas, per-protein spectra and nearest
neighbours — as base64 typed arrays in the page, with the page's own JavaScript
(``templates/explorer.js``) inlined, so the file opens from ``file://`` and from any
static web server with no network access.

Why our own WebGL code rather than a vendored scatter library: what the page needs from
WebGL is one ``gl.POINTS`` draw call with a pan/zoom transform (about 100 lines); the
libraries that do it (regl-scatterplot, deck.gl) come as ES modules with dependency
trees that need a bundler to become one offline file, and would still need our own
code for the thumbnails, search, spectra and neighbour panels.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cyto._atomic import write_text_atomic
from cyto.analysis._palette import UNLABELLED_COLOR, categorical_colors
from cyto.analysis._validate import as_float_array, encode_labels, random_rank_in_group
from cyto.data._channels import NUCLEAR_STAINS

__all__ = [
    "ExplorerData",
    "crop_thumbnails",
    "nearest_proteins",
    "sample_per_group",
    "write_explorer",
]

#: Thumbnails per sprite sheet row; sheets are square (``_SHEET_COLS`` thumbnails a side).
_SHEET_COLS = 32


@dataclass
class ExplorerData:
    """Everything the explorer page shows, as arrays.

    Parameters
    ----------
    xy : (n, 2) float array
        Atlas coordinates of every point (crop), e.g. a UMAP.
    protein_ids : (n,) array of str
        Protein of every point.
    colorings : mapping of str to (n,) labels
        Named colourings (e.g. ``{"family": ..., "plate": ...}``); unlabelled points are
        ``None``, ``""`` or NaN and shown grey.
    thumbnails : (m, s, s, 3) uint8 array, optional
        RGB thumbnails of a sample of points (:func:`crop_thumbnails`).
    thumbnail_points : (m,) int array, optional
        The point each thumbnail shows.
    spectra : (p, k) float array, optional
        Feature spectrum of each protein in ``spectrum_proteins``, columns in display
        order (e.g. the biclustering order of the codes).
    spectrum_proteins : (p,) array of str, optional
    spectrum_clusters : (k,) int array, optional
        Feature cluster of every spectrum column (colours the bars).
    neighbours : mapping of str to list of (str, float), optional
        Each protein's nearest proteins with their distances (:func:`nearest_proteins`).
    protein_info : mapping of str to mapping of str to str, optional
        Per-protein facts shown when it is selected (e.g. ``{"family": {...}}``).
    title : str
    notes : list of str
        Sentences shown under the title (e.g. how the thumbnails were sampled).
    """

    xy: np.ndarray
    protein_ids: np.ndarray
    colorings: Mapping[str, Any] = field(default_factory=dict)
    thumbnails: np.ndarray | None = None
    thumbnail_points: np.ndarray | None = None
    spectra: np.ndarray | None = None
    spectrum_proteins: np.ndarray | None = None
    spectrum_clusters: np.ndarray | None = None
    neighbours: Mapping[str, Sequence[tuple[str, float]]] = field(default_factory=dict)
    protein_info: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    title: str = "cyto atlas"
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.xy = as_float_array(self.xy, "xy", ndim=2)
        n = self.xy.shape[0]
        if self.xy.shape[1] != 2 or n == 0:
            raise ValueError(f"`xy` must have shape (n >= 1, 2), got {self.xy.shape}")
        self.protein_ids = _strings(self.protein_ids, n, "protein_ids")
        for name, labels in self.colorings.items():
            if len(labels) != n:
                raise ValueError(
                    f"`colorings[{name!r}]` has {len(labels)} labels, expected {n} (one per point)"
                )
        if (self.thumbnails is None) != (self.thumbnail_points is None):
            raise ValueError("give both `thumbnails` and `thumbnail_points`, or neither")
        if self.thumbnails is not None:
            _check_thumbnails(self.thumbnails, self.thumbnail_points, n)
        if self.spectra is not None:
            _check_spectra(self.spectra, self.spectrum_proteins, self.spectrum_clusters)


def _strings(values: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values).astype(str)
    if arr.shape != (n,):
        raise ValueError(f"`{name}` must have shape ({n},), got {arr.shape}")
    return arr


def _check_thumbnails(thumbs: np.ndarray, points: Any, n: int) -> None:
    t = np.asarray(thumbs)
    if t.dtype != np.uint8 or t.ndim != 4 or t.shape[3] != 3 or t.shape[1] != t.shape[2]:
        raise ValueError(
            f"`thumbnails` must be a uint8 array of shape (m, s, s, 3), got {t.dtype} {t.shape}"
        )
    p = np.asarray(points)
    if p.shape != (t.shape[0],) or (p.size and (p.min() < 0 or p.max() >= n)):
        raise ValueError(
            f"`thumbnail_points` must hold {t.shape[0]} point indices in [0, {n}), got "
            f"shape {p.shape}"
        )


def _check_spectra(spectra: Any, proteins: Any, clusters: Any) -> None:
    s = np.asarray(spectra)
    if s.ndim != 2:
        raise ValueError(f"`spectra` must be 2-D (proteins, codes), got shape {s.shape}")
    if proteins is None or len(proteins) != s.shape[0]:
        raise ValueError(f"`spectrum_proteins` must name the {s.shape[0]} rows of `spectra`")
    if clusters is not None and len(clusters) != s.shape[1]:
        raise ValueError(
            f"`spectrum_clusters` must have {s.shape[1]} entries (one per column of "
            f"`spectra`), got {len(clusters)}"
        )


# --------------------------------------------------------------------------- helpers
def crop_thumbnails(
    crops: np.ndarray,
    channels: Sequence[str],
    *,
    size: int = 64,
) -> np.ndarray:
    """RGB thumbnails of crops: the protein channel in grey, the nucleus outline in cyan.

    The protein channel is scaled to its 0.5–99.5th percentiles per crop. Nuclei are
    where the ``distance`` channel is positive (inside a nucleus, as written by
    ``cyto preprocess``) or, without it, where the ``nucleus`` channel exceeds its
    Otsu threshold; the outline of the one the crop is centred on (the nearest to the
    centre) is drawn one pixel wide after resizing.

    Parameters
    ----------
    crops : (m, C, H, W) array
        Crops as read from the crop store.
    channels : sequence of str
        Channel names of axis 1. The protein channel is shown, else the first stain that
        is not nuclear (a Cell Painting crop: ER), else the first.
    size : int, default 64
        Thumbnail side in pixels.

    Returns
    -------
    thumbnails : (m, size, size, 3) uint8 array
    """
    from skimage.segmentation import find_boundaries
    from skimage.transform import resize

    crops = np.asarray(crops)
    channels = list(channels)
    if crops.ndim != 4 or crops.shape[1] != len(channels):
        raise ValueError(
            f"`crops` must have shape (m, {len(channels)}, H, W) for channels {channels}, "
            f"got {crops.shape}"
        )
    shown = _shown_channel(channels)
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"`size` must be an int >= 8, got {size!r}")
    out = np.empty((crops.shape[0], size, size, 3), dtype=np.uint8)
    for i, crop in enumerate(crops.astype(np.float32)):
        prot = resize(crop[shown], (size, size), anti_aliasing=True)
        lo, hi = np.percentile(prot, (0.5, 99.5))
        grey = np.clip((prot - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
        out[i] = (grey * 255).astype(np.uint8)[..., None]
        mask = _nucleus_mask(crop, channels)
        if mask is not None:
            small = resize(mask.astype(np.float32), (size, size), order=0) > 0.5
            edge = find_boundaries(small, mode="inner")
            out[i][edge] = (0, 220, 255)
    return out


def _shown_channel(channels: list[str]) -> int:
    """The channel a thumbnail shows: the protein, else the first stain that is not the
    nuclear one (a Cell Painting store: ER), else the first."""
    if "protein" in channels:
        return channels.index("protein")
    nuclear = {"distance", *NUCLEAR_STAINS}
    return next((k for k, c in enumerate(channels) if c not in nuclear), 0)


def _nucleus_mask(crop: np.ndarray, channels: list[str]) -> np.ndarray | None:
    """The nucleus the crop is centred on (the one nearest the centre), or None."""
    from scipy import ndimage as ndi

    if "distance" in channels:
        inside = crop[channels.index("distance")] > 0
    elif "nucleus" in channels:
        from skimage.filters import threshold_otsu

        nuc = crop[channels.index("nucleus")]
        if np.ptp(nuc) == 0:
            return None
        inside = nuc > threshold_otsu(nuc)
    else:
        return None
    labels, n = ndi.label(inside)
    if n == 0:
        return None
    h, w = labels.shape
    centre = labels[h // 2, w // 2]
    if centre == 0:  # the nearest nucleus pixel to the centre
        rr, cc = np.nonzero(labels)
        j = np.argmin((rr - h // 2) ** 2 + (cc - w // 2) ** 2)
        centre = labels[rr[j], cc[j]]
    return labels == centre


def sample_per_group(groups: Any, max_total: int, *, seed: int = 0) -> np.ndarray:
    """Indices of at most ``max_total`` items, spread evenly over the groups.

    Every group keeps ``max_total // n_groups`` items (at least one while there is room),
    the remaining places go to random further items, so every protein has crops to show.

    Parameters
    ----------
    groups : (n,) array
        Group (protein) of every item.
    max_total : int
        Largest number of indices returned.
    seed : int, default 0

    Returns
    -------
    indices : (k,) int array, sorted, ``k = min(n, max_total)``
    """
    codes, classes = encode_labels(groups, len(groups))
    n = codes.size
    if isinstance(max_total, bool) or not isinstance(max_total, int) or max_total < 0:
        raise ValueError(f"`max_total` must be a non-negative int, got {max_total!r}")
    if n <= max_total:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    per = max(1, max_total // max(classes.size, 1))
    by_group, rank = random_rank_in_group(codes, rng)
    first = by_group[rank < per]
    if first.size > max_total:
        first = rng.choice(first, size=max_total, replace=False)
    rest = np.setdiff1d(np.arange(n), first)
    extra = rng.choice(rest, size=max_total - first.size, replace=False)
    return np.sort(np.concatenate([first, extra]))


def nearest_proteins(
    encodings: Any, protein_ids: Any, *, k: int = 10, metric: str = "cosine"
) -> dict[str, list[tuple[str, float]]]:
    """Each protein's ``k`` nearest proteins by the mean of their crops' encodings.

    Parameters
    ----------
    encodings : (n, d) array
    protein_ids : (n,) array
    k : int, default 10
    metric : {"cosine", "euclidean"}, default "cosine"

    Returns
    -------
    neighbours : dict of str to list of (protein, distance)
        Nearest first; cosine distance is ``1 - cos``.
    """
    from sklearn.neighbors import NearestNeighbors

    from cyto.analysis._spectra import mean_by_label

    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"`metric` must be 'cosine' or 'euclidean', got {metric!r}")
    X = as_float_array(encodings, "encodings", ndim=2)
    names, profiles = mean_by_label(X, np.asarray(protein_ids).astype(str))
    kk = min(int(k) + 1, len(names))
    nn = NearestNeighbors(n_neighbors=kk, metric=metric).fit(profiles)
    dist, idx = nn.kneighbors(profiles)
    out: dict[str, list[tuple[str, float]]] = {}
    for i, name in enumerate(names):
        out[str(name)] = [(str(names[j]), float(d)) for j, d in zip(idx[i], dist[i]) if j != i][
            : int(k)
        ]
    return out


# --------------------------------------------------------------------------- encoding
def _b64(arr: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")


def _index_dtype(n: int) -> tuple[type, str]:
    return (np.uint16, "u16") if n < 65535 else (np.uint32, "u32")


def _coloring(name: str, labels: Any, n: int) -> dict[str, Any]:
    codes, classes = encode_labels(labels, n)
    dtype, kind = _index_dtype(classes.size)
    missing = np.iinfo(dtype).max
    idx = np.where(codes < 0, missing, codes).astype(dtype)
    counts = np.bincount(codes[codes >= 0], minlength=classes.size)
    return {
        "name": name,
        "labels": [str(c) for c in classes],
        "counts": counts.tolist(),
        "colors": categorical_colors(int(classes.size)),
        "missing": int(missing),
        "unlabelled": int((codes < 0).sum()),
        "index": {"dtype": kind, "data": _b64(idx)},
    }


def _sprite_sheets(thumbs: np.ndarray) -> tuple[list[str], str]:
    """Thumbnails packed row-major into square sheets: base64 images and their MIME type.

    WebP at quality 80 (about 0.8 kB per 64×64 thumbnail of a noisy crop, against
    5 kB as PNG); JPEG when Pillow lacks WebP.
    """
    from PIL import Image, features

    fmt = "WEBP" if features.check("webp") else "JPEG"
    m, s = thumbs.shape[0], thumbs.shape[1]
    per = _SHEET_COLS * _SHEET_COLS
    sheets = []
    for start in range(0, m, per):
        block = thumbs[start : start + per]
        grid = np.zeros((_SHEET_COLS * s, _SHEET_COLS * s, 3), dtype=np.uint8)
        for j, t in enumerate(block):
            r, c = divmod(j, _SHEET_COLS)
            grid[r * s : (r + 1) * s, c * s : (c + 1) * s] = t
        rows_used = -(-block.shape[0] // _SHEET_COLS)
        buf = io.BytesIO()
        Image.fromarray(grid[: rows_used * s]).save(buf, format=fmt, quality=80)
        sheets.append(base64.b64encode(buf.getvalue()).decode("ascii"))
    return sheets, f"image/{fmt.lower()}"


def _protein_positions(xy: np.ndarray, codes: np.ndarray, n_proteins: int) -> np.ndarray:
    """Median atlas position of every protein's points."""
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n_proteins + 1))
    return np.array(
        [np.median(xy[order[a:b]], axis=0) for a, b in itertools.pairwise(bounds)],
        dtype=np.float64,
    )


def _quantize(xy: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Coordinates as uint16 over their bounding box (display precision 1/65535)."""
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.round((xy - lo) / span * 65535).astype(np.uint16)
    return q, [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])]


def _payload(data: ExplorerData, seed: int) -> dict[str, Any]:
    """The page's data (JSON with base64 typed arrays); points in a shuffled draw order."""
    n = data.xy.shape[0]
    order = np.random.default_rng(seed).permutation(n)  # no family always drawn on top
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    pcodes, proteins = encode_labels(data.protein_ids, n)
    pdtype, pkind = _index_dtype(proteins.size)
    q, bounds = _quantize(data.xy)
    prot_xy, _ = _quantize(np.vstack([data.xy, _protein_positions(data.xy, pcodes, proteins.size)]))
    out: dict[str, Any] = {
        "title": data.title,
        "notes": list(data.notes),
        "n": int(n),
        "bounds": bounds,
        "xy": _b64(q[order]),
        "protein": {"dtype": pkind, "data": _b64(pcodes[order].astype(pdtype))},
        "proteins": [str(p) for p in proteins],
        "protein_xy": _b64(prot_xy[n:]),
        "unlabelled_color": UNLABELLED_COLOR,
        "colorings": [
            _coloring(name, np.asarray(labels, dtype=object)[order], n)
            for name, labels in data.colorings.items()
        ],
        "protein_info": {k: dict(v) for k, v in data.protein_info.items()},
        "thumbs": None,
        "spectra": None,
        "neighbours": {
            str(k): [[str(p), float(d)] for p, d in v] for k, v in data.neighbours.items()
        },
    }
    if data.thumbnails is not None and data.thumbnails.shape[0]:
        pts = rank[np.asarray(data.thumbnail_points, dtype=np.int64)]
        out["thumbs"] = {
            "size": int(data.thumbnails.shape[1]),
            "cols": _SHEET_COLS,
            "points": _b64(pts.astype(np.uint32)),
            "count": int(pts.size),
        }
        out["thumbs"]["sheets"], out["thumbs"]["mime"] = _sprite_sheets(data.thumbnails)
    if data.spectra is not None:
        s = np.asarray(data.spectra, dtype=np.float32)
        clusters = data.spectrum_clusters
        out["spectra"] = {
            "proteins": [str(p) for p in data.spectrum_proteins],  # type: ignore[union-attr]
            "k": int(s.shape[1]),
            "values": _b64(s),
            "clusters": [] if clusters is None else [int(c) for c in clusters],
            "cluster_colors": categorical_colors(
                0 if clusters is None or not len(clusters) else int(np.max(clusters)) + 1
            ),
        }
    return out


def write_explorer(path: str | os.PathLike, data: ExplorerData, *, seed: int = 0) -> Path:
    """Write the interactive atlas as one self-contained HTML file.

    The page draws every point with WebGL (pan by dragging, zoom with the wheel),
    colours them by any of ``data.colorings``, shows a point's crop thumbnail on hover,
    finds a protein by name, and on click shows that protein's spectrum, nearest
    proteins and crops. It needs no network and opens from ``file://``.

    Parameters
    ----------
    path : path-like
        Output ``.html`` file (written atomically).
    data : ExplorerData
    seed : int, default 0
        Seed of the random drawing order of the points.

    Returns
    -------
    path : Path
    """
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cyto.analysis", "templates"), autoescape=True
    )
    script = (Path(__file__).parent / "templates" / "explorer.js").read_text(encoding="utf-8")
    # JSON inside <script>: escape '<' so no '</script>' can end the block early
    payload = json.dumps(_payload(data, seed), separators=(",", ":")).replace("<", "\\u003c")
    page = env.get_template("explorer.html.j2").render(
        title=data.title, payload=Markup(payload), script=Markup(script)
    )
    path = Path(path)
    return write_text_atomic(path, page, mkdir=True)
