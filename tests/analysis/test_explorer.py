"""The explorer's arrays and file (no browser; see test_explorer_browser.py for that)."""

from __future__ import annotations

import base64
import itertools
import json
import re

import numpy as np
import pytest

from cyto.analysis import (
    ExplorerData,
    crop_thumbnails,
    nearest_proteins,
    sample_per_group,
    write_explorer,
)
from cyto.analysis._palette import categorical_colors


def _payload(html: str) -> dict:
    m = re.search(r'<script id="cyto-data" type="application/json">(.*?)</script>', html, re.S)
    assert m is not None
    return json.loads(m.group(1))


def _rgb(h: str) -> np.ndarray:
    return np.array([int(h[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)


def test_categorical_colors_keep_neighbours_apart() -> None:
    colors = categorical_colors(300)
    assert len(set(colors)) == 300
    # the first 14 (a typical number of families) are far apart pairwise, not only
    # as neighbours: the closest pair differs by > 60 in RGB distance
    first = [_rgb(c) for c in colors[:14]]
    closest = min(np.linalg.norm(a - b) for i, a in enumerate(first) for b in first[i + 1 :])
    assert closest > 60
    assert all(np.linalg.norm(_rgb(a) - _rgb(b)) > 40 for a, b in itertools.pairwise(colors))
    with pytest.raises(ValueError, match="`n`"):
        categorical_colors(-1)


def test_family_colors_are_the_categorical_ones() -> None:
    pytest.importorskip("matplotlib")
    from cyto.analysis._figures import family_colors

    assert list(family_colors(["b", "a", "c"]).values()) == categorical_colors(3)


def test_sample_per_group_covers_every_group() -> None:
    groups = np.repeat(["A", "B", "C", "D"], [1000, 5, 1, 50])
    idx = sample_per_group(groups, 40, seed=1)
    assert idx.size == 40 and np.unique(idx).size == 40
    assert set(groups[idx]) == {"A", "B", "C", "D"}
    # every group keeps its share (10) or all of its items when it has fewer
    counts = {g: int((groups[idx] == g).sum()) for g in "ABCD"}
    assert counts["C"] == 1 and counts["B"] == 5 and counts["D"] >= 10
    assert np.array_equal(sample_per_group(groups[:3], 10), [0, 1, 2])
    assert np.array_equal(sample_per_group(groups, 40, seed=1), idx)  # seeded
    with pytest.raises(ValueError, match="`max_total`"):
        sample_per_group(groups, -1)


def test_nearest_proteins_excludes_self_and_sorts() -> None:
    rng = np.random.default_rng(0)
    pids = np.repeat(["A", "A2", "B", "B2"], 5)
    centres = {"A": [5, 0], "A2": [5, 0.3], "B": [0, 5], "B2": [0.2, 5]}
    X = np.array([centres[p] for p in pids]) + rng.normal(scale=0.01, size=(20, 2))
    nn = nearest_proteins(X, pids, k=2, metric="euclidean")
    assert [p for p, _ in nn["A"]] == ["A2", "B2"]
    assert next(p for p, _ in nn["B"]) == "B2"
    assert all(d1 <= d2 for v in nn.values() for (_, d1), (_, d2) in itertools.pairwise(v))
    with pytest.raises(ValueError, match="`metric`"):
        nearest_proteins(X, pids, metric="manhattan")


def test_crop_thumbnails_outline_the_central_nucleus_only() -> None:
    yy, xx = np.mgrid[:40, :40]
    protein = np.where(np.hypot(yy - 20, xx - 20) < 15, 1.0, 0.0)
    central = 6 - np.hypot(yy - 20, xx - 20)  # nucleus of radius 6 at the centre
    other = 4 - np.hypot(yy - 5, xx - 5)  # a neighbour's nucleus in a corner
    distance = np.maximum(central, other)
    crops = np.stack([protein, distance])[None].astype(np.float32)
    thumbs = crop_thumbnails(crops, ["protein", "distance"], size=40)
    assert thumbs.shape == (1, 40, 40, 3) and thumbs.dtype == np.uint8
    cyan = (thumbs[0, ..., 0] == 0) & (thumbs[0, ..., 2] == 255)
    rr, cc = np.nonzero(cyan)
    assert rr.size > 10
    assert np.all(np.hypot(rr - 20, cc - 20) < 8)  # around the centre, not the corner
    grey = thumbs[0, 20, 28]  # inside the protein disc, outside the nucleus outline
    assert grey[0] == grey[1] == grey[2] == 255
    # without a protein channel the first stain that is not nuclear is shown (Cell Painting)
    stains = crop_thumbnails(crops, ["ER", "DNA"], size=40)
    assert tuple(stains[0, 20, 28]) == (255, 255, 255) and tuple(stains[0, 38, 2]) == (0, 0, 0)
    with pytest.raises(ValueError, match="`crops`"):
        crop_thumbnails(crops[0], ["protein", "distance"])


def _data(n: int = 60, thumbs: bool = True) -> ExplorerData:
    rng = np.random.default_rng(0)
    pids = np.array([f"P{i % 6}" for i in range(n)])
    fam = np.array(["er" if int(p[1]) < 3 else "golgi" for p in pids], dtype=object)
    fam[0] = None
    kw = {}
    if thumbs:
        pts = sample_per_group(pids, 12)
        kw = {
            "thumbnails": rng.integers(0, 255, (pts.size, 16, 16, 3), dtype=np.uint8),
            "thumbnail_points": pts,
        }
    return ExplorerData(
        xy=rng.normal(size=(n, 2)),
        protein_ids=pids,
        colorings={"family": fam},
        spectra=rng.random((6, 8)),
        spectrum_proteins=np.array([f"P{i}" for i in range(6)]),
        spectrum_clusters=np.repeat([0, 1], 4),
        neighbours={"P0": [("P1", 0.1)]},
        title="T <b>",
        **kw,
    )


def test_write_explorer_is_self_contained(tmp_path) -> None:
    data = _data()
    path = write_explorer(tmp_path / "sub" / "atlas.html", data)
    html = path.read_text(encoding="utf-8")
    # nothing fetched at view time: no external script, stylesheet, image or fetch
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "fetch(" not in html and "XMLHttpRequest" not in html
    assert "T &lt;b&gt;" in html  # the title is escaped
    d = _payload(html)
    assert d["n"] == 60 and d["proteins"] == [f"P{i}" for i in range(6)]
    fam = d["colorings"][0]
    assert fam["name"] == "family" and fam["labels"] == ["er", "golgi"]
    assert fam["unlabelled"] == 1 and sum(fam["counts"]) == 59
    # points are shuffled for drawing; protein index and coordinates stay together
    xy = np.frombuffer(base64.b64decode(d["xy"]), np.uint16).reshape(-1, 2)
    prot = np.frombuffer(base64.b64decode(d["protein"]["data"]), np.uint16)
    lo = np.array(d["bounds"][0::2])
    span = np.array(d["bounds"][1::2]) - lo
    back = xy / 65535 * span + lo
    for i in range(60):
        j = int(np.argmin(np.abs(back - data.xy[i]).sum(axis=1)))
        assert d["proteins"][prot[j]] == data.protein_ids[i]
        assert np.allclose(back[j], data.xy[i], atol=span.max() / 30000)
    t = d["thumbs"]
    assert t["count"] == 12 and t["mime"] in ("image/webp", "image/jpeg")
    pts = np.frombuffer(base64.b64decode(t["points"]), np.uint32)
    assert sorted(d["proteins"][prot[p]] for p in pts) == sorted(
        data.protein_ids[data.thumbnail_points]
    )


def test_write_explorer_without_thumbnails_or_labels(tmp_path) -> None:
    data = _data(thumbs=False)
    data.colorings = {}
    d = _payload(write_explorer(tmp_path / "a.html", data).read_text(encoding="utf-8"))
    assert d["thumbs"] is None and d["colorings"] == []


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"xy": np.zeros((5, 3))}, "`xy`"),
        ({"xy": np.full((60, 2), np.nan)}, "NaN or infinite"),
        ({"protein_ids": np.array(["A"] * 5)}, "`protein_ids`"),
        ({"colorings": {"family": ["a"] * 3}}, "colorings"),
        ({"thumbnail_points": None}, "both"),
        ({"thumbnails": np.zeros((12, 16, 16), np.uint8)}, "`thumbnails`"),
        ({"thumbnail_points": np.arange(100, 112)}, "`thumbnail_points`"),
        ({"spectrum_clusters": [0, 1]}, "`spectrum_clusters`"),
    ],
)
def test_explorer_data_rejects_bad_input(change: dict, match: str) -> None:
    d = _data()
    kwargs = {k: getattr(d, k) for k in d.__dataclass_fields__}
    kwargs.update(change)
    with pytest.raises(ValueError, match=match):
        ExplorerData(**kwargs)


def test_analyze_writes_an_h5ad_that_scanpy_plots(fake_embeddings, tmp_path) -> None:
    """A fresh interpreter reads atlas.h5ad and runs sc.pl.umap(color='family') as is."""
    pytest.importorskip("scanpy")
    import subprocess
    import sys

    from cyto.analysis import analyze_embeddings

    rep = analyze_embeddings(
        fake_embeddings["embeddings"],
        tmp_path / "report",
        ground_truth=fake_embeddings["annotations"],
        complexes=fake_embeddings["complexes"],
        verbose=False,
        explorer=False,
    )
    h5ad = rep.files["atlas.h5ad"]
    code = (
        "import matplotlib; matplotlib.use('Agg'); import scanpy as sc, sys\n"
        f"a = sc.read_h5ad({str(h5ad)!r})\n"
        "ax = sc.pl.umap(a, color='family', show=False)\n"
        "ax.figure.savefig(sys.argv[1])\n"
        "print(a.n_obs, a.n_vars, sorted(a.obs['family'].dropna().unique()),"
        " a.obsm['X_umap'].shape, a.uns['provenance']['format'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "umap.png")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == ["64", "32"]  # the test split, 32 global features
    assert "'chromatin'" in out.stdout and "(64, 2)" in out.stdout
    assert (tmp_path / "umap.png").stat().st_size > 5000


def test_export_and_explore_reject_bad_input(fake_embeddings, tmp_path) -> None:
    pytest.importorskip("anndata")
    from cyto.analysis import cluster_shares, explore_embeddings
    from cyto.cli import main
    from cyto.data import export_h5ad

    emb = fake_embeddings["embeddings"]
    with pytest.raises(ValueError, match="`rows` must be sorted and unique"):
        export_h5ad(emb, tmp_path / "a.h5ad", rows=np.array([3, 1]))
    with pytest.raises(ValueError, match=r"`rows` must be 1-D indices in \[0, 192\)"):
        export_h5ad(emb, tmp_path / "a.h5ad", rows=np.array([0, 500]))
    with pytest.raises(ValueError, match=r"`obs\['family'\]` must have 192 values"):
        export_h5ad(emb, tmp_path / "a.h5ad", obs={"family": ["er"] * 3})
    with pytest.raises(ValueError, match=r"`obsm\['X_umap'\]` must have shape \(192, k\)"):
        export_h5ad(emb, tmp_path / "a.h5ad", obsm={"X_umap": np.zeros((3, 2))})
    assert not (tmp_path / "a.h5ad").exists()  # nothing half-written
    with pytest.raises(ValueError, match="`cluster_labels` must be non-negative"):
        cluster_shares([[0, 1]], [0, -1])
    with pytest.raises(FileNotFoundError, match="`embeddings` file not found"):
        explore_embeddings(tmp_path / "none.h5", tmp_path / "x.html", verbose=False)
    code = main(["explore", str(emb), "-o", str(tmp_path / "x.html"), "--max-thumbnails", "-1"])
    assert code == 2 and not (tmp_path / "x.html").exists()
