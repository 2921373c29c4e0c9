"""Drive the explorer page in headless Chromium (Debian's package) with Playwright.

Used by the browser tests and by ``benchmarks/bench_explorer.py``. No browser is ever
downloaded: Playwright is pointed at the system Chromium (``CYTO_CHROMIUM`` or the
first of ``chromium``, ``chromium-browser``, ``google-chrome`` on the PATH). WebGL runs
in software (SwiftShader), as on any machine without a GPU.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

#: Chromium flags: software WebGL (SwiftShader) so the page draws without a GPU.
CHROMIUM_ARGS = ("--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox")


def chromium_path() -> str | None:
    """The system Chromium's executable, or None."""
    env = os.environ.get("CYTO_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def why_no_browser() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if chromium_path() is None:
        return "no system Chromium (apt-get install chromium; .ci/run installs it)"
    return None


@contextlib.contextmanager
def browser_page(
    width: int = 1280, height: int = 800, extra_args: tuple[str, ...] = ()
) -> Iterator[tuple[Any, list[str]]]:
    """A fresh page in headless Chromium, and the list its console errors go to."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        args = [*CHROMIUM_ARGS, *extra_args]
        browser = pw.chromium.launch(executable_path=chromium_path(), args=args)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page, errors
        finally:
            browser.close()


@contextlib.contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """A static web server over ``folder`` on a free local port; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def open_explorer(page: Any, url: str, timeout_ms: int = 120_000) -> float:
    """Load the explorer and wait until it has drawn; returns its load time in ms."""
    page.goto(url)
    page.wait_for_function("window.cytoExplorer && window.cytoExplorer.ready", timeout=timeout_ms)
    return float(page.evaluate("window.cytoExplorer.loadMs"))


def canvas_pixels(page: Any, path: Path | None = None) -> np.ndarray:
    """Screenshot of the atlas canvas as an (H, W, 3) uint8 array (saved to ``path``)."""
    import io

    from PIL import Image

    png = page.locator("#gl").screenshot(path=str(path) if path else None)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def hover_point(page: Any, point: int) -> dict[str, str]:
    """Move the mouse onto a point; the tooltip's point and thumbnail index."""
    x, y = page.evaluate(f"window.cytoExplorer.screenOfPoint({point})")
    box = page.locator("#gl").bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.wait_for_selector("#tip:not([hidden])", timeout=5000)
    return page.evaluate(
        "({point: document.getElementById('tip').dataset.point,"
        " thumb: document.getElementById('tip').dataset.thumb})"
    )


def search_protein(page: Any, name: str) -> None:
    """Type a protein name into the search box and press Enter."""
    page.fill("#search", name)
    page.press("#search", "Enter")
    page.wait_for_selector("#protein-panel:not([hidden])", timeout=5000)


def screenshot_tour(page: Any, out_dir: Path, protein: str) -> list[Path]:
    """The three screenshots of the docs: full view, a crop hovered, a protein selected.

    The hovered crop is the first crop of ``protein`` that has a thumbnail.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    shots = [out_dir / f"explorer_{n}.png" for n in ("full", "hover", "selected")]
    page.screenshot(path=str(shots[0]))
    point = page.evaluate(
        f"""(() => {{ const e = window.cytoExplorer;
            for (let i = 0; i < e.n; i++)
              if (e.proteinOfPoint(i) === {protein!r} && e.hasThumb(i)) return i;
            return 0; }})()"""
    )
    hover_point(page, point)
    page.screenshot(path=str(shots[1]))
    page.mouse.move(2, 2)
    search_protein(page, protein)
    page.wait_for_timeout(200)
    page.screenshot(path=str(shots[2]))
    return shots
