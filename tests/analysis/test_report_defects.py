"""Each defect a new user found in the report (issue 17) has a test that catches it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from cyto.analysis import representative_images


def test_representatives_use_their_cluster_and_never_repeat() -> None:
    # crop 0 uses every cluster a little: it must not represent them all
    idx = np.array(
        [
            [0, 1, 2, 3, 4, 5],
            [0, 0, 0, 0, 0, 0],
            [2, 2, 2, 2, 2, 0],
            [4, 4, 4, 4, 4, 4],
            [1, 1, 1, 0, 0, 0],
        ]
    )
    lab = np.array([0, 0, 1, 1, 2, 2])  # 3 clusters of 2 codes
    picks = representative_images(idx, lab, n=3)
    chosen = picks[picks >= 0]
    assert chosen.size == np.unique(chosen).size  # no crop for two clusters
    share = np.stack([(lab[idx] == c).mean(axis=1) for c in range(3)], axis=1)
    for c in range(3):
        assert all(share[i, c] > 0 for i in picks[c] if i >= 0)  # every pick uses it
    assert picks[0, 0] == 1 and picks[1, 0] == 2 and picks[2, 0] == 3


def test_every_feature_cluster_is_labelled_on_the_bar() -> None:
    pytest.importorskip("matplotlib")
    from cyto.analysis import Biclusters, plot_correlation_heatmap
    from cyto.analysis._figures import roman

    # 11 clusters, several of one code among 200: each numeral must be on the figure
    sizes = [60, 1, 50, 1, 2, 40, 1, 30, 1, 12, 2]
    labels = np.repeat(np.arange(11), sizes)
    k = labels.size
    bic = Biclusters(order=np.arange(k), labels=labels, linkage=np.zeros((k - 1, 4)), n_clusters=11)
    fig = plot_correlation_heatmap(np.eye(k), bic)
    texts = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert {roman(c) for c in range(11)} <= texts


def test_score_chart_shows_the_baselines() -> None:
    pytest.importorskip("matplotlib")
    from cyto.analysis import ScoreTable, plot_scores

    table = ScoreTable.from_scores({"cyto": {"organelle": [3.0, 3.2], "complex": [4.0, 4.1]}})
    fig = plot_scores(table, baselines={"pixels": {"organelle": 2.0, "complex": 2.5}})
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["cyto", "baseline: pixels"]
    heights = sorted(round(p.get_height(), 2) for p in fig.axes[0].patches)
    assert 2.0 in heights and 2.5 in heights


@pytest.fixture(scope="module")
def report(fake_embeddings, tmp_path_factory) -> Path:
    pytest.importorskip("matplotlib")
    from cyto.analysis import analyze_embeddings

    rep = analyze_embeddings(
        fake_embeddings["embeddings"],
        tmp_path_factory.mktemp("rep") / "report",
        ground_truth=fake_embeddings["annotations"],
        complexes=fake_embeddings["complexes"],
        verbose=False,
    )
    return rep.html


def test_every_figure_has_a_caption_and_the_page_a_glossary(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    blocks = re.findall(r"<p>([^<]*)</p>\s*<p><img", html)
    assert len(blocks) == html.count("<img") >= 5  # a paragraph right before every figure
    assert all(len(b) > 30 for b in blocks)
    assert ">Glossary</h2>" in html
    for term in ("Γ (clustering score)", "feature spectrum", "global encoding", "mAP"):
        assert f"<td>{term}</td>" in html


def test_figures_come_as_svg_too(report: Path) -> None:
    figures = report.parent / "figures"
    for png in figures.glob("*.png"):
        assert png.with_suffix(".svg").is_file(), png.name
        assert png.with_suffix(".svg").read_text()[:200].lstrip().startswith("<?xml")


def test_a_moved_folder_keeps_finding_its_inputs(tmp_path: Path) -> None:
    from cyto._paths import locate, relative_to

    (tmp_path / "a" / "run").mkdir(parents=True)
    store = tmp_path / "a" / "crops.h5"
    store.write_text("x")
    rel = relative_to(store, tmp_path / "a" / "run")
    assert rel == "../crops.h5"
    (tmp_path / "a").rename(tmp_path / "b")  # the absolute path is gone now
    found = locate(store, rel, tmp_path / "b" / "run")
    assert found == (tmp_path / "b" / "crops.h5").resolve()
    assert locate(store, None, tmp_path / "b" / "run") is None


def test_representative_crops_name_protein_family_share_and_show_a_scale(fake_embeddings) -> None:
    pytest.importorskip("matplotlib")
    from cyto.analysis import _figures
    from cyto.analysis._sections import _representative_crops

    picks = np.array([[0, 12], [24, -1]])
    pids = np.array([f"P{i // 12}" for i in range(48)])
    share = np.full((48, 2), 0.25)
    fig = _representative_crops(
        None,
        fake_embeddings["crops"],
        np.arange(48),
        picks,
        pids,
        _figures,
        {"P0": "er", "P1": "golgi"},
        share,
    )
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0] == "P0 · er\n25% of codes" and titles[1] == "P1 · golgi\n25% of codes"
    assert any(t.get_text().endswith(" px") for t in fig.axes[0].texts)  # the scale bar
    assert fig.axes[0].lines  # drawn as a line on the first crop
