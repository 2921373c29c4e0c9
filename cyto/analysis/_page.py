"""The report page and the files beside it: one self-contained HTML page from sections of
text, tables, figures and links; the glossary; the sections kept as ``sections.json`` (so a
larger page can hold them); and the atomic writers of the report folder's files."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cyto._atomic import atomic_path, write_text_atomic

__all__ = ["GLOSSARY", "SECTIONS_FILE", "Link", "glossary_section", "load_sections", "write_report"]


# --------------------------------------------------------------------------- file writers
def _atomic_write(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (its folder created); the path."""
    with atomic_path(path, mkdir=True) as tmp:
        tmp.write_bytes(data)
    return path


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """Write a CSV table (``\\n`` line ends) atomically; the path."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return write_text_atomic(path, buf.getvalue(), mkdir=True)


def _fig_png(fig: Any, dpi: int = 150, fmt: str = "png") -> bytes:
    """A matplotlib figure rendered as ``fmt`` (PNG by default)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return buf.getvalue()


@dataclass
class ReportFiles:
    """The files a report writes into its folder: each written atomically and recorded
    by name, in the order written (the page's "Files" table lists them in that order).

    Parameters
    ----------
    folder : Path
        The report folder.
    files : dict of str to Path
        Every file written so far, by name.
    """

    folder: Path
    files: dict[str, Path] = field(default_factory=dict)

    def figure(self, name: str, fig: Any) -> Path:
        """Write a figure to ``figures/<name>.png`` (150 dpi, shown on the page) and
        ``figures/<name>.svg`` (for print); the PNG's path (an item of the page)."""
        folder = self.folder / "figures"
        self.files[f"{name}.svg"] = _atomic_write(folder / f"{name}.svg", _fig_png(fig, fmt="svg"))
        self.files[name] = _atomic_write(folder / f"{name}.png", _fig_png(fig))
        return self.files[name]

    def csv(self, name: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
        """Write the table ``<name>`` (a CSV file in the folder); its path."""
        self.files[name] = _write_csv(self.folder / name, header, rows)
        return self.files[name]

    def data(self, name: str, data: bytes) -> Path:
        """Write the bytes ``<name>`` (e.g. an ``.npz`` file) in the folder; its path."""
        self.files[name] = _atomic_write(self.folder / name, data)
        return self.files[name]

    def text(self, name: str, text: str) -> Path:
        """Write the UTF-8 text ``<name>`` in the folder; its path."""
        self.files[name] = write_text_atomic(self.folder / name, text, mkdir=True)
        return self.files[name]


# --------------------------------------------------------------------------- HTML
@dataclass(frozen=True)
class Link:
    """A page item: a link to a file beside the page (written relative to the page).

    Parameters
    ----------
    path : Path
        The linked file.
    text : str
        The link's text.
    """

    path: Path
    text: str


def write_report(
    path: str | os.PathLike,
    *,
    title: str,
    sections: Sequence[tuple[str, Sequence[Any]]],
) -> Path:
    """Write one self-contained HTML page (images embedded as base64 PNG).

    Parameters
    ----------
    path : path-like
        Output ``.html`` file (written atomically).
    title : str
        Page title.
    sections : sequence of (heading, items)
        Each item is a ``str`` (a paragraph; HTML-escaped), ``bytes`` (a PNG image),
        a path to a ``.png`` file, a :class:`Link` to a file (written relative to the
        page, so the folder can move), or a table given as
        ``{"header": [...], "rows": [[...]]}``.

    Returns
    -------
    path : Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = write_report(pathlib.Path(tempfile.mkdtemp()) / "r.html", title="T",
    ...                  sections=[("Scores", ["Γ = 2.5", {"header": ["a"], "rows": [[1]]}])])
    >>> "<td>1</td>" in p.read_text()
    True
    """
    page = _template().render(
        title=str(title),
        sections=[
            {
                "heading": str(heading),
                "content": [_page_item(item, Path(path).parent) for item in items],
            }
            for heading, items in sections
        ],
    )
    return write_text_atomic(path, page, mkdir=True)


def _template() -> Any:
    """The page template (``templates/report.html.j2``; Jinja2 escapes every value)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cyto.analysis", "templates"),
        autoescape=True,
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2")


def _page_item(item: Any, page_dir: Path) -> dict[str, Any]:
    """One section item as the template's ``{"kind": ...}`` record."""
    if isinstance(item, Link):
        href = Path(os.path.relpath(item.path, page_dir)).as_posix()
        return {"kind": "link", "href": href, "text": item.text}
    if isinstance(item, (bytes, bytearray)):
        return {"kind": "image", "alt": "", "data": base64.b64encode(bytes(item)).decode("ascii")}
    if isinstance(item, Path):
        data = base64.b64encode(item.read_bytes()).decode("ascii")
        return {"kind": "image", "alt": item.name, "data": data}
    if isinstance(item, Mapping):
        rows = [[str(c) for c in row] for row in item["rows"]]
        return {"kind": "table", "header": [str(h) for h in item["header"]], "rows": rows}
    return {"kind": "text", "text": str(item)}


# --------------------------------------------------------------------------- glossary
#: Terms the pages use, explained once (the "Glossary" section of every report).
GLOSSARY: tuple[tuple[str, str], ...] = (
    (
        "crop",
        "a small image (100×100 px by default) centred on one nucleus: the protein "
        "channel, and the nucleus as a distance map",
    ),
    (
        "global encoding",
        "the model's coarse description of a crop (its second, 4×4 "
        "quantized layer): what the atlas, Γ, mAP and k-NN use",
    ),
    (
        "local codes",
        "the model's fine description: a 25×25 map whose every position holds "
        "one entry (code) of a learned dictionary (the codebook) of image patterns",
    ),
    (
        "feature spectrum",
        "how often a protein's crops use each local code, averaged over its "
        "crops: a fingerprint of its localization pattern",
    ),
    (
        "feature cluster",
        "a group of codes used by the same proteins (roman numerals i, ii, "
        "...): one kind of pattern, e.g. nuclear speckles or a membrane rim",
    ),
    ("UMAP", "a 2-D map of the encodings in which similar crops lie close together; the atlas"),
    (
        "Γ (clustering score)",
        "how well the atlas separates the known classes: spread of the "
        "class centres divided by the typical class size; higher is better, 1 means no "
        "separation",
    ),
    (
        "k-NN family accuracy",
        "how often the 15 nearest training crops of a test crop mostly share its family",
    ),
    (
        "mAP",
        "mean average precision: how high the members of the same group (protein, "
        "family) rank when every profile retrieves its nearest neighbours; 1 is perfect; "
        "q < 0.05 means better than shuffled labels after correcting for many tests",
    ),
    (
        "complex recall",
        "the fraction of complex members with another member among their nearest proteins",
    ),
    (
        "baseline",
        "the same scores computed from raw pixels or intensity statistics instead "
        "of the model's encodings: what the model must beat",
    ),
    ("hidden protein", "a protein whose family was withheld and then predicted from its spectrum"),
)


def glossary_section() -> tuple[str, list[Any]]:
    """The "Glossary" section (a table of :data:`GLOSSARY`).

    Returns
    -------
    section : (heading, items)
    """
    return ("Glossary", [{"header": ["term", "meaning"], "rows": [list(t) for t in GLOSSARY]}])


# --------------------------------------------------------------------------- sections.json
#: The page's sections, kept beside the figures so another page can hold them.
SECTIONS_FILE = "sections.json"


def _sections_json(sections: Sequence[tuple[str, Sequence[Any]]], root: Path) -> str:
    """Sections as JSON: text and tables as they are, figures as paths below ``root``."""

    def item(x: Any) -> Any:
        if isinstance(x, Link):
            return {"link": x.path.relative_to(root).as_posix(), "text": x.text}
        return {"figure": x.relative_to(root).as_posix()} if isinstance(x, Path) else x

    data = [{"heading": h, "items": [item(x) for x in items]} for h, items in sections]
    return json.dumps(data, indent=1, default=str)


def load_sections(folder: str | os.PathLike) -> list[tuple[str, list[Any]]]:
    """The page sections an analysis kept in ``folder`` (figures as paths), for
    :func:`write_report`; empty when there are none.

    Parameters
    ----------
    folder : path-like
        An ``analyze_embeddings`` output folder.

    Returns
    -------
    sections : list of (heading, items)
    """
    path = Path(folder) / SECTIONS_FILE
    if not path.is_file():
        return []
    out = []
    for sec in json.loads(path.read_text(encoding="utf-8")):
        out.append((sec["heading"], [_loaded_item(x, Path(folder)) for x in sec["items"]]))
    return out


def _loaded_item(x: Any, folder: Path) -> Any:
    """A section item read back from ``sections.json`` (figures and links as paths)."""
    if isinstance(x, dict) and "figure" in x:
        return folder / x["figure"]
    if isinstance(x, dict) and "link" in x:
        return Link(folder / x["link"], x["text"])
    return x
