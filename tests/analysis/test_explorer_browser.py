"""The explorer in a real browser: headless Chromium (Debian package) via Playwright.

Skips with the reason when Playwright or a system Chromium is missing (`.ci/run`
installs both). Set ``CYTO_SCREENSHOTS=DIR`` to keep the screenshots.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.analysis.browser import (
    browser_page,
    canvas_pixels,
    hover_point,
    open_explorer,
    screenshot_tour,
    search_protein,
    static_server,
    why_no_browser,
)

pytestmark = pytest.mark.skipif(why_no_browser() is not None, reason=str(why_no_browser()))


@pytest.fixture(scope="module")
def explorer_html(fake_embeddings, tmp_path_factory) -> Path:
    from cyto.cli import main

    out = tmp_path_factory.mktemp("explorer") / "atlas.html"
    code = main(
        [
            "explore",
            str(fake_embeddings["embeddings"]),
            "-o",
            str(out),
            "--ground-truth",
            str(fake_embeddings["annotations"]),
            "--complexes",
            str(fake_embeddings["complexes"]),
            "--max-thumbnails",
            "64",
            "-q",
        ]
    )
    assert code == 0 and out.is_file()
    return out


def _shots(tmp_path: Path) -> Path:
    return Path(os.environ.get("CYTO_SCREENSHOTS", tmp_path))


def test_explorer_draws_hovers_searches_and_selects(explorer_html: Path, tmp_path: Path) -> None:
    with browser_page() as (page, errors):
        open_explorer(page, explorer_html.as_uri())
        assert errors == []
        # the canvas is not blank: many coloured (non-white, non-grey) pixels
        px = canvas_pixels(page, _shots(tmp_path) / "explorer_test_full.png").astype(int)
        coloured = (px.max(axis=2) - px.min(axis=2)) > 40
        assert coloured.sum() > 200
        n = page.evaluate("window.cytoExplorer.n")
        assert n == 192
        # hovering a point that has a thumbnail shows that crop's thumbnail
        point = page.evaluate(
            "(() => { for (let i = 0; i < 192; i++)"
            " if (window.cytoExplorer.hasThumb(i)) return i; })()"
        )
        tip = hover_point(page, point)
        assert tip["point"] == str(point) and int(tip["thumb"]) >= 0
        protein = page.evaluate(f"window.cytoExplorer.proteinOfPoint({point})")
        assert protein in page.inner_text("#tiptext")
        thumb = page.locator("#tipimg").screenshot()
        assert len(set(thumb)) > 100  # an image, not a blank canvas
        # searching a protein (lower case, as typed) highlights its points
        page.mouse.move(1, 1)
        search_protein(page, "p10")
        assert page.inner_text("#p-name") == "P10"
        assert page.evaluate("window.cytoExplorer.state().selected") >= 0
        px = canvas_pixels(page).astype(int)
        highlight = (
            (np.abs(px[..., 0] - 255) < 30) & (np.abs(px[..., 1] - 46) < 30) & (px[..., 2] < 120)
        )
        assert highlight.sum() > 20  # the selected protein's points, drawn on top
        # its spectrum, nearest proteins (with distances) and crops are shown
        assert page.evaluate("document.getElementById('p-spectrum').dataset.drawn") == "1"
        rows = page.locator("#p-neighbours tr")
        assert rows.count() == 10
        first = rows.nth(0).inner_text().split()
        assert first[0].startswith("P") and float(first[1]) >= 0
        assert page.locator("#p-crops canvas").count() >= 1
        # clicking a neighbour selects it
        rows.nth(0).locator("a").click()
        assert page.inner_text("#p-name") == first[0]
        # an unknown name says so
        page.fill("#search", "NOPE")
        page.press("#search", "Enter")
        assert "no protein named" in page.inner_text("#search-msg")
        # clicking a point selects its protein
        x, y = page.evaluate(f"window.cytoExplorer.screenOfPoint({point})")
        box = page.locator("#gl").bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)
        assert page.inner_text("#p-name") == protein
        assert errors == []


def test_explorer_views_and_colourings(explorer_html: Path) -> None:
    with browser_page() as (page, errors):
        open_explorer(page, explorer_html.as_uri())
        options = page.locator("#color-by option").all_inner_texts()
        assert options[:2] == ["family", "complex"]
        assert "feature cluster" in options and "protein" in options
        page.select_option("#color-by", label="complex")
        legend = page.inner_text("#legend")
        assert "C00" in legend
        page.select_option("#view", "proteins")
        page.wait_for_timeout(100)
        px = canvas_pixels(page).astype(int)
        assert ((px.max(axis=2) - px.min(axis=2)) > 40).sum() > 50
        tip = hover_point(page, 0)
        assert tip["point"] == "0"
        # zoom and pan keep working and keep drawing
        box = page.locator("#gl").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.wheel(0, -400)
        page.wait_for_timeout(100)
        assert page.evaluate("window.cytoExplorer.state().zoom") > 1
        assert errors == []


def test_explorer_from_a_static_web_server(explorer_html: Path) -> None:
    with static_server(explorer_html.parent) as url, browser_page() as (page, errors):
        open_explorer(page, f"{url}/{explorer_html.name}")
        assert errors == []
        assert page.evaluate("window.cytoExplorer.n") == 192


def test_analyze_writes_and_links_the_explorer(fake_embeddings, tmp_path: Path) -> None:
    from cyto.analysis import analyze_embeddings

    rep = analyze_embeddings(
        fake_embeddings["embeddings"],
        tmp_path / "report",
        ground_truth=fake_embeddings["annotations"],
        verbose=False,
    )
    html = rep.html.read_text(encoding="utf-8")
    assert 'href="explorer.html"' in html
    with browser_page() as (page, errors):
        page.goto(rep.html.as_uri())
        page.click("text=Open the interactive atlas")
        page.wait_for_function("window.cytoExplorer && window.cytoExplorer.ready")
        assert errors == []
        assert page.evaluate("window.cytoExplorer.n") == 64  # the test split


def test_screenshot_tour(explorer_html: Path, tmp_path: Path) -> None:
    with browser_page() as (page, errors):
        open_explorer(page, explorer_html.as_uri())
        shots = screenshot_tour(page, _shots(tmp_path), "P21")
        assert all(p.stat().st_size > 5000 for p in shots)
        assert errors == []


def test_without_webgl_the_page_says_why(explorer_html: Path, tmp_path: Path) -> None:
    """WebGL turned off: the page says so and what to do, never "loading…" forever."""
    with browser_page(extra_args=("--disable-webgl", "--disable-3d-apis")) as (page, _):
        page.goto(explorer_html.as_uri())
        page.wait_for_function("document.body.dataset.failed === 'webgl'", timeout=30_000)
        text = page.inner_text("#status")
        assert "WebGL turned off" in text and "loading" not in text
        assert page.evaluate("document.body.dataset.ready") is None
        page.screenshot(path=str(_shots(tmp_path) / "explorer_no_webgl.png"))
