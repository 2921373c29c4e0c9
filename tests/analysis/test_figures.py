"""Figures render to PNG without a display and without pyplot's global state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cyto.analysis import (
    bicluster,
    clustering_score_table,
    code_correlation,
    plot_atlas,
    plot_correlation_heatmap,
    plot_difference_maps,
    plot_family_spectra,
    plot_localization,
    plot_protein_highlights,
    plot_scores,
    save_figure,
)

PNG = b"\x89PNG\r\n\x1a\n"


def check_png(path: Path, min_size: tuple[int, int] = (200, 150)) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG
    img = imread(path)
    assert img.shape[0] >= min_size[1] and img.shape[1] >= min_size[0]
    assert img[..., :3].std() > 0.01  # not a blank canvas


def test_all_figures_render(tmp_path: Path, rng: np.random.Generator) -> None:
    Y = rng.normal(size=(120, 2))
    labels = np.array(["er", "golgi", None, "nucleolus_gc"] * 30, dtype=object)
    pids = np.repeat([f"P{i}" for i in range(12)], 10)
    check_png(save_figure(plot_atlas(Y, labels), tmp_path / "atlas.png"))
    check_png(
        save_figure(
            plot_protein_highlights(Y, pids, ["P0", "P5"], labels=labels), tmp_path / "hl.png"
        )
    )
    hist = rng.poisson(2.0, size=(30, 40)).astype(float)
    corr = code_correlation(hist)
    bic = bicluster(corr, n_clusters=5)
    check_png(save_figure(plot_correlation_heatmap(corr, bic), tmp_path / "corr.png"))
    check_png(save_figure(plot_family_spectra(["er", "golgi"], hist[:2], bic), tmp_path / "s.png"))
    diffs = rng.normal(size=(3, 20, 20))
    check_png(
        save_figure(
            plot_difference_maps(rng.random((20, 20)), diffs, titles=["a", "b", "c"]),
            tmp_path / "diff.png",
        )
    )
    # cyto.nn ablation output layout: (n, C, S, S) reconstruction and difference
    four_d = plot_difference_maps(rng.random((2, 2, 20, 20)), rng.normal(size=(2, 2, 20, 20)))
    check_png(save_figure(four_d, tmp_path / "diff4.png"))
    table = clustering_score_table(
        {"full": [Y, Y + 1], "no pretext": [Y * 2]}, {"organelle": labels}
    )
    check_png(save_figure(plot_scores(table), tmp_path / "scores.png"))
    check_png(
        save_figure(
            plot_localization([("er", 0.9), ("golgi", 0.1)], protein="FAM241A"),
            tmp_path / "loc.png",
        )
    )
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporaries


def test_figures_are_headless(tmp_path: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "from cyto.analysis import plot_atlas, save_figure\n"
        "Y = np.random.default_rng(0).normal(size=(20, 2))\n"
        "fig = plot_atlas(Y, ['a'] * 10 + [None] * 10)\n"
        f"save_figure(fig, {str(tmp_path / 'a.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG


def test_figure_input_errors(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="2 columns"):
        plot_atlas(rng.normal(size=(5, 3)), [None] * 5)
    with pytest.raises(ValueError, match="`labels` has 4 entries"):
        plot_atlas(rng.normal(size=(5, 2)), [None] * 4)
    with pytest.raises(ValueError, match="does not match `differences`"):
        plot_difference_maps(np.zeros((2, 8, 8)), np.zeros((3, 8, 8)))
    bic = bicluster(np.eye(4), n_clusters=2)
    with pytest.raises(ValueError, match=r"must have shape \(1, 4\)"):
        plot_family_spectra(["er"], np.zeros((1, 5)), bic)
    with pytest.raises(ValueError, match="at least one protein"):
        plot_protein_highlights(np.zeros((3, 2)), ["a", "b", "c"], [])
