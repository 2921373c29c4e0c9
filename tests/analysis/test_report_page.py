"""The HTML page: a Jinja2 template, every value escaped, images embedded."""

from __future__ import annotations

import base64

from cyto.analysis import write_report


def test_page_escapes_text_and_tables_and_embeds_images(tmp_path) -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    (tmp_path / "fig.png").write_bytes(png)
    page = write_report(
        tmp_path / "r.html",
        title="Atlas <of> cells & more",
        sections=[
            ("Scores & <b>", ["Γ = 2.5 <script>", {"header": ["<a>"], "rows": [[1, "x&y"]]}]),
            ("Figures", [png, tmp_path / "fig.png"]),
        ],
    ).read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<title>Atlas &lt;of&gt; cells &amp; more</title>" in page
    assert "<th>&lt;a&gt;</th>" in page and "<td>x&amp;y</td>" in page
    assert page.count(base64.b64encode(png).decode()) == 2 and 'alt="fig.png"' in page
    assert '<a href="#s1">Figures</a>' in page and '<h2 id="s0">Scores &amp; &lt;b&gt;</h2>' in page
