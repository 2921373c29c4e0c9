"""``cyto analyze``: atlas, scores, feature spectra and one self-contained HTML report."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cyto._atomic import atomic_path
from cyto._provenance import package_versions
from cyto.analysis._evaluate import Evaluation, evaluate
from cyto.analysis._explorer_data import CodeClusters
from cyto.analysis._ground_truth import GroundTruth, labels_for
from cyto.analysis._profiles import center_scale_by_batch
from cyto.analysis._reading import (
    _embedding_inputs,
    _embedding_paths,
    _ground_truth_of,
    _log,
    _read_embeddings,
)
from cyto.analysis._score import ScoreTable
from cyto.analysis._spectra import (
    bicluster,
    cluster_shares,
    code_correlation,
    feature_spectra,
    localize,
    mean_by_label,
    representative_images,
)
from cyto.data import output_folder
from cyto.data._embeddings import Embeddings

__all__ = ["AnalysisReport", "analyze_embeddings", "write_report"]


# --------------------------------------------------------------------------- I/O helpers
def _atomic_write(path: Path, data: bytes) -> Path:
    with atomic_path(path, mkdir=True) as tmp:
        tmp.write_bytes(data)
    return path


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return _atomic_write(path, buf.getvalue().encode("utf-8"))


def _fig_png(fig: Any, dpi: int = 150, fmt: str = "png") -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return buf.getvalue()


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
    return _atomic_write(Path(path), page.encode("utf-8"))


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


# --------------------------------------------------------------------------- analysis
@dataclass(frozen=True)
class AnalysisReport:
    """What :func:`analyze_embeddings` wrote.

    Attributes
    ----------
    out_dir : Path
        The report folder.
    html : Path or None
        The self-contained HTML page (None with ``page=False``).
    scores : ScoreTable or None
        Clustering scores per ground-truth level (None without ground truth).
    evaluation : Evaluation
        The first file's evaluation (Γ, k-NN accuracy, hidden proteins, baselines).
    summary : dict
        Everything in ``scores.json``.
    files : dict of str to Path
        Every file written, by name.
    sections : list of (heading, items)
        The page's sections (for :func:`write_report`), e.g. to put them on a page of
        your own (``cyto demo`` does).
    """

    out_dir: Path
    html: Path | None
    scores: ScoreTable | None
    evaluation: Evaluation | None = field(default=None, repr=False)
    summary: dict[str, Any] = field(default_factory=dict, repr=False)
    files: dict[str, Path] = field(default_factory=dict, repr=False)
    sections: list[tuple[str, list[Any]]] = field(default_factory=list, repr=False)


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


def _loo_localization_accuracy(spectra: np.ndarray, families: np.ndarray) -> float | None:
    """Fraction of labelled proteins whose best-correlated family (leave-one-out) is theirs."""
    lab = np.array([f is not None for f in families])
    if lab.sum() < 3:
        return None
    S = spectra[lab]
    fam = families[lab].astype(str)
    names, inverse = np.unique(fam, return_inverse=True)
    counts = np.bincount(inverse, minlength=names.size)
    if names.size < 2:
        return None
    sums = np.zeros((names.size, S.shape[1]))
    np.add.at(sums, inverse, S)
    means = sums / counts[:, None]

    def _z(a: np.ndarray) -> np.ndarray:
        a = a - a.mean(axis=-1, keepdims=True)
        n = np.linalg.norm(a, axis=-1, keepdims=True)
        return a / np.where(n > 0, n, 1.0)

    r = _z(S) @ _z(means).T  # (G, F)
    own_n = counts[inverse]
    loo = (sums[inverse] - S) / np.maximum(own_n - 1, 1)[:, None]
    r_own = np.einsum("ij,ij->i", _z(S), _z(loo))
    rows = np.arange(S.shape[0])
    r[rows, inverse] = np.where(own_n > 1, r_own, -np.inf)  # singleton families can't be hit
    valid = own_n > 1
    return float(np.mean(np.argmax(r[valid], axis=1) == inverse[valid])) if valid.any() else None


def analyze_embeddings(
    embeddings: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    ground_truth: str | os.PathLike | None = None,
    complexes: str | os.PathLike | None = None,
    split: str | None = "test",
    fit_split: str | None = None,
    umap_seeds: Sequence[int] = (0,),
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    backend: str = "auto",
    max_points: int | None = None,
    n_clusters: int = 11,
    min_grade: int = 2,
    highlight: Sequence[str] | None = None,
    crops: str | os.PathLike | None = None,
    ablation: str | os.PathLike | Mapping[str, Any] | None = None,
    verbose: bool = True,
    allow_degenerate: bool = False,
    page: bool = True,
    hidden_seed: int = 0,
    baselines: str | os.PathLike | Mapping[str, Any] | None = None,
    batch_key: str | None = None,
    explorer: bool = True,
    max_thumbnails: int = 5000,
    overwrite: bool = False,
) -> AnalysisReport:
    """Analyse an embeddings file: atlas, clustering scores, feature spectra, HTML report.

    Reads the HDF5 file written by ``cyto embed`` (datasets ``global``,
    ``local_indices``, ``local_hist``, ``protein_id``, ``fov_id``, ``split``,
    ``crop_index``) with h5py and writes into ``out_dir``:

    - ``figures/*.png`` — atlas UMAP coloured by family (Fig. 2), per-protein highlight
      panels, code-correlation heatmap with feature clusters (Fig. 4a), spectra per
      family (Fig. 4b), representative crops per feature cluster (with the crop store),
      clustering-score bars (Fig. 6) and ablation difference maps (Fig. 5, if given);
    - ``scores.json`` and ``scores.csv`` — Γ per ground-truth level and UMAP seed, mean ±
      s.e.m., the :class:`~cyto.analysis.Evaluation` (k-NN family accuracy against the
      training split when the atlas is the test split, hidden-protein localization, the
      ground truth's levels and exclusions), leave-one-out localization accuracy of the
      family spectra;
    - ``umap.csv`` (coordinates per crop), ``feature_clusters.csv`` (cluster per code),
      ``spectra.npz`` (per-protein spectra, correlation, order), ``localization.csv``
      (best families for every protein, the FAM241A analysis);
    - ``explorer.html`` — the interactive atlas (:func:`~cyto.analysis.write_explorer`):
      every atlas crop, crops on hover, proteins searchable, spectra and neighbours on
      click; linked from the page;
    - ``atlas.h5ad`` — the atlas crops as AnnData (``X`` = global encodings, ``obs``
      with family/complex, ``obsm["X_umap"]``), when ``anndata`` is installed;
    - ``report.html`` — one self-contained page showing all of it.

    Parameters
    ----------
    embeddings : path-like or sequence of path-like
        The embeddings HDF5 file. With several files (e.g. one per model variant of an
        ablation study), the first gives the atlas and spectra and all of them are
        scored side by side (Fig. 6 / Supp. Table 1).
    out_dir : path-like
        Report folder (created).
    ground_truth : path-like, optional
        OpenCell annotation CSV, ``ground_truth.csv`` (protein_id,family,complex) or a
        complex table; see :func:`~cyto.analysis.load_ground_truth`.
    complexes : path-like, optional
        Complex table (protein_id,complex) for the complex-level score.
    split : str or None, default "test"
        Crops shown in the atlas and scored (the paper uses the test split). ``None`` or
        ``"all"``: every crop. A split the file does not have is an error (never a
        silent fallback to every crop).
    fit_split : str, optional
        Fit the UMAP on this split (e.g. ``"train"``) and transform ``split`` into it.
    umap_seeds : sequence of int, default (0,)
        One UMAP per seed; scores are reported as mean ± s.e.m. over them (the paper: 10).
    n_neighbors, min_dist, backend
        UMAP options (see :class:`~cyto.analysis.AtlasUMAP`).
    max_points : int, optional
        Randomly subsample the atlas crops to at most this many (seeded).
    n_clusters : int, default 11
        Top-level feature clusters.
    min_grade : int, default 2
        Annotation grade threshold for OpenCell annotation tables.
    highlight : sequence of str, optional
        Proteins for the highlight panels (default: the most imaged protein of each of
        up to 8 families).
    crops : path-like, optional
        Crop store (HDF5 with ``/crops``) for representative images; defaults to the
        store recorded in the embeddings file when it exists.
    ablation : path-like or mapping, optional
        Feature-ablation output for Fig. 5: an ``.npz`` (or mapping) with ``differences``
        (or ``difference``, as in ``cyto.nn.CodeAblation``) (n, H, W) or (n, C, H, W),
        optional ``images`` (or ``reconstruction``) of the same shape or (H, W), and
        ``titles`` (n,).
    verbose : bool, default True
        Print progress to stderr.
    allow_degenerate : bool, default False
        Analyse encodings even when they are degenerate (see
        :class:`~cyto.analysis.EncodingHealth`); by default that is an error.
    page : bool, default True
        Write ``report.html``. False returns its sections only
        (:attr:`AnalysisReport.sections`), for a page that holds more.
    hidden_seed : int, default 0
        Seed of the draw of hidden proteins (one per family) localized from their spectra.
    baselines : path-like or mapping, optional
        Γ of model-free baselines measured elsewhere on the same crops
        (:func:`~cyto.analysis.baseline_scores`, or its JSON file), shown beside the
        model's scores.
    overwrite : bool, default False
        Replace a report folder cyto wrote earlier at ``out_dir`` (its files only;
        :func:`cyto.data.output_folder`); any other non-empty folder is refused.
    batch_key : str, optional
        A per-crop column of the embeddings file (``plate``, ``well``, ``Metadata_*``):
        the encodings are also evaluated after per-batch centring and scaling
        (:func:`~cyto.analysis.center_scale_by_batch`), before/after in one section and
        in ``scores.json`` → ``evaluation_corrected``.
    explorer : bool, default True
        Write ``explorer.html`` and link it from the atlas section.
    max_thumbnails : int, default 5000
        Crop thumbnails embedded in the explorer (sampled evenly over the proteins).

    Returns
    -------
    report : AnalysisReport

    Raises
    ------
    FileNotFoundError
        If an input file does not exist.
    ValueError
        If the embeddings file lacks required datasets or the split is unknown.
    DegenerateEncodingError
        (a ValueError) If the encodings are degenerate and ``allow_degenerate`` is False.
    """
    t0 = time.perf_counter()
    emb_paths = _embedding_paths(embeddings)
    inputs = [("the embeddings file", p) for p in emb_paths]
    inputs += [("the ground truth", ground_truth), ("the complex table", complexes)]
    inputs += [("the crop store", crops), ("the ablation maps", ablation)]
    with output_folder(out_dir, "report", inputs=inputs, overwrite=overwrite):
        umap = {"n_neighbors": n_neighbors, "min_dist": min_dist, "backend": backend}
        run = _AnalysisRun.start(out_dir, emb_paths, umap_seeds, umap, verbose=verbose)
        read = {"split": split, "fit_split": fit_split, "max_points": max_points}
        main = _read_embeddings(
            emb_paths[0], local=True, allow_degenerate=allow_degenerate, crops=crops, **read
        )
        run.describe_input(main)
        pids = main["pids_all"][main["rows"]]
        gt = _ground_truth_of(ground_truth, complexes, min_grade, pids)
        spectra = None
        if main["local_idx"] is not None and main["num_codes"] > 0:
            _log(verbose, f"feature spectra: {main['local_idx'].shape[0]} crops")
            spectra = feature_spectra(main["local_idx"], main["pids_all"], main["num_codes"])
        ev = run.evaluate(main, gt, spectra=spectra, hidden_seed=hidden_seed)
        if baselines is not None:
            ev.baselines = _baselines_of(baselines)
        run.summary["umap"] |= {"fit_split": fit_split or main["split_used"]}
        run.write_umap_csv(main, ev.umaps[0], gt)
        # further model variants (ablation study, Fig. 6), read only when there is a score
        others = (
            _read_embeddings(p, local=False, allow_degenerate=allow_degenerate, **read)
            for p in emb_paths[1:]
        )
        table = run.score(main["variant"], ev, others, gt)
        fam_map = gt.family_of()
        color_labels = labels_for(pids, fam_map) if gt.family_level else np.full(pids.size, None)
        run.atlas_section(main, ev.umaps[0], color_labels, gt.family_level, fam_map, highlight)
        if table is not None:
            run.score_section(table, ev, gt)
        else:
            why = "; ".join(ev.notes) or "no ground truth was given (ground_truth / complexes)"
            run.sections.append(("Clustering score", [f"Clustering scores not computed: {why}."]))
        if ev.retrieval:
            run.retrieval_section(main["variant"], ev)
        if batch_key is not None:
            run.batch_section(main, gt, ev, batch_key)
        if ev.hidden:
            run.hidden_section(ev)
        if spectra is not None:
            run.spectra_section(main, spectra, fam_map, n_clusters=n_clusters, crops=None)
        if ablation is not None:
            run.ablation_section(ablation)
        if explorer:
            run.explorer(main, ev.umaps[0], gt, spectra, crops=None, max_thumbnails=max_thumbnails)
        run.write_h5ad(main, ev.umaps[0], gt)
        return run.finish(t0, main["variant"], table, ev, page=page)


def _baselines_of(baselines: Any) -> dict[str, Any]:
    """Baseline scores given as a mapping or a JSON file (``cyto demo``'s baselines.json)."""
    if isinstance(baselines, Mapping):
        return dict(baselines)
    path = Path(baselines)
    if not path.is_file():
        raise FileNotFoundError(f"`baselines` file not found: {path}")
    return dict(json.loads(path.read_text(encoding="utf-8")))


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


def _ablation_maps(ablation: Any) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Difference maps, their images and titles from a feature-ablation output."""
    data = (
        dict(np.load(ablation, allow_pickle=False))
        if not isinstance(ablation, Mapping)
        else dict(ablation)
    )
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


@dataclass
class _AnalysisRun:
    """The outputs of one :func:`analyze_embeddings` call, built section by section."""

    out: Path
    verbose: bool
    umap: dict[str, Any]
    summary: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    sections: list[tuple[str, list[Any]]] = field(default_factory=list)
    clusters: CodeClusters | None = None

    @classmethod
    def start(
        cls,
        out_dir: Any,
        emb_paths: list[Path],
        seeds: Sequence[int],
        umap: dict[str, Any],
        *,
        verbose: bool,
    ) -> _AnalysisRun:
        """A run writing into ``out_dir``, its summary naming the inputs and versions."""
        return cls(
            out=Path(out_dir),
            verbose=verbose,
            umap={"seeds": [int(v) for v in seeds], **umap},
            summary={
                "embeddings": str(emb_paths[0].resolve()),
                "inputs": [_embedding_inputs(p) for p in emb_paths],
                "versions": package_versions(),
            },
        )

    def __post_init__(self) -> None:
        (self.out / "figures").mkdir(parents=True, exist_ok=True)
        self.summary["umap"] = {}

    @property
    def figs(self) -> Any:
        from cyto.analysis import _figures

        return _figures

    def save(self, name: str, fig: Any) -> Path:
        """Write a figure to ``figures/<name>.png`` (150 dpi, shown on the page) and
        ``figures/<name>.svg`` (for print); the PNG's path (an item of the page)."""
        folder = self.out / "figures"
        self.files[f"{name}.svg"] = _atomic_write(folder / f"{name}.svg", _fig_png(fig, fmt="svg"))
        self.files[name] = _atomic_write(folder / f"{name}.png", _fig_png(fig))
        return self.files[name]

    def describe_input(self, main: dict[str, Any]) -> None:
        rows, n_all = main["rows"], main["n_all"]
        _log(
            self.verbose,
            f"{n_all} crops, atlas on split '{main['split_used']}' ({rows.size} crops)",
        )
        self.summary.update(
            encoding_health=main["health"].to_dict(),
            n_crops=int(n_all),
            atlas_split=main["split_used"],
            atlas_crops=int(rows.size),
            proteins=int(np.unique(main["pids_all"]).size),
        )

    def evaluate(self, main: dict[str, Any], gt: GroundTruth, **kwargs: Any) -> Evaluation:
        """:func:`evaluate` one variant with this run's UMAP options."""
        name, u = main["variant"], self.umap
        ev = evaluate(
            main["X"],
            main["pids_all"][main["rows"]],
            gt,
            reference=main.get("reference"),
            fit=main["X_fit"],
            umap_seeds=u["seeds"],
            umap_options={k: u[k] for k in ("n_neighbors", "min_dist", "backend")},
            log=lambda msg: _log(self.verbose, f"{name}: {msg}"),
            **kwargs,
        )
        self.summary["umap"] |= {k: ev.umap[k] for k in ("backend", "seeds")}
        self.summary["umap"] |= {k: u[k] for k in ("n_neighbors", "min_dist")}
        return ev

    def write_umap_csv(self, main: dict[str, Any], Y: np.ndarray, gt: GroundTruth) -> None:
        rows = main["rows"]
        crop_labels = {lv: gt.labels(lv, main["pids_all"][rows]) for lv in gt.levels}
        table = [
            [
                int(main["crop_index"][r]),
                main["pids_all"][r],
                main["fov_all"][r],
                main["split_all"][r],
                float(x),
                float(y),
            ]
            + [crop_labels[lv][i] or "" for lv in gt.levels]
            for i, (r, (x, y)) in enumerate(zip(rows, Y))
        ]
        header = ["crop_index", "protein_id", "fov_id", "split", "umap1", "umap2", *gt.levels]
        self.files["umap.csv"] = _write_csv(self.out / "umap.csv", header, table)

    def score(
        self,
        variant: str,
        ev: Evaluation,
        others: Iterable[dict[str, Any]],
        gt: GroundTruth,
    ) -> ScoreTable | None:
        """Γ per level and UMAP seed of every variant (levels with ≥ 2 classes)."""
        self.summary["evaluation"] = ev.to_dict()
        if ev.notes:
            self.summary.setdefault("notes", []).extend(ev.notes)
        if not ev.scores:
            return None
        names = [variant]
        per_variant = {variant: {lv: s["values"] for lv, s in ev.scores.items()}}
        for other in others:
            name = other["variant"]
            while name in names:
                name += "'"
            names.append(name)
            o_ev = self.evaluate({**other, "variant": name}, gt)
            per_variant[name] = {lv: o_ev.scores[lv]["values"] for lv in ev.scores}
        table = ScoreTable.from_scores(per_variant)
        self.summary["scores"] = table.to_records()
        seeds = self.umap["seeds"]
        self.files["scores.csv"] = _write_csv(
            self.out / "scores.csv",
            ["variant", "level", "umap_seed", "score"],
            [
                [v, lv, int(s), float(x)]
                for v in table.variants
                for lv in table.levels
                for s, x in zip(seeds, table.scores[v][lv])
            ],
        )
        return table

    def atlas_section(
        self,
        main: dict[str, Any],
        Y: np.ndarray,
        color_labels: np.ndarray,
        family_level: str | None,
        fam_map: Mapping[str, str],
        highlight: Sequence[str] | None,
    ) -> None:
        rows, split_used, variant = main["rows"], main["split_used"], main["variant"]
        pids = main["pids_all"][rows]
        title = f"Localization atlas — {variant} ({split_used}, {rows.size} crops)"
        items: list[Any] = [
            f"UMAP of the global encodings of {rows.size} crops (split '{split_used}'), coloured "
            f"by {family_level or 'nothing (no ground truth given)'}; unlabelled crops are grey.",
            self.save("atlas", self.figs.plot_atlas(Y, color_labels, title=title)),
        ]
        if highlight is None:
            highlight = _default_highlight(pids, fam_map)
        highlight = [p for p in highlight if p in set(pids.tolist())]
        if highlight:
            fig = self.figs.plot_protein_highlights(Y, pids, highlight, labels=color_labels)
            items += [
                "Crops of single proteins highlighted in the atlas:",
                self.save("highlights", fig),
            ]
        self.sections.append(("Localization atlas", items))

    def score_section(self, table: ScoreTable, ev: Evaluation, gt: GroundTruth) -> None:
        rows = [
            [f"cyto: {r['variant']}", r["level"], _mean_sem_text(r), r["n"]]
            for r in table.to_records()
        ]
        rows += [
            [f"baseline: {name}", lv, _mean_sem_text(s), len(s.get("values", []))]
            for name, per_level in ev.baselines.items()
            for lv, s in per_level.items()
            if lv != "retrieval"
        ]
        items: list[Any] = [
            "Γ = spread of the class centroids / median class size (robust statistics, "
            f"Kobayashi et al. 2022), mean ± s.e.m. over {len(self.umap['seeds'])} UMAP "
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
        fig = self.figs.plot_scores(table, baselines=base)
        items += [
            "Figure: Γ of the model (solid bars, mean ± s.e.m. over the UMAP seeds) next to "
            "the model-free baselines on the same crops (hatched): raw pixels and intensity "
            "statistics. The model learned something beyond them where its bar is taller.",
            self.save("clustering_scores", fig),
        ]
        self.sections.append(("Clustering score", items))

    def retrieval_section(self, variant: str, ev: Evaluation) -> None:
        """mAP (protein consistency, family retrieval) and complex recall, model and
        baselines side by side."""
        reps = [(f"cyto: {variant}", ev.retrieval)] + [
            (f"baseline: {n}", b.get("retrieval", {})) for n, b in ev.baselines.items()
        ]
        rows = [[name, *_retrieval_cells(r)] for name, r in reps if r]
        self.sections.append(
            (
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
        )

    def batch_section(
        self, main: dict[str, Any], gt: GroundTruth, ev: Evaluation, key: str
    ) -> None:
        """The model's scores before and after per-batch centring and scaling."""
        with Embeddings(main["path"]) as emb:  # read here: only a batch key needs them
            obs = emb.obs()
        if key not in obs:
            raise ValueError(
                f"`batch_key` {key!r} is not a per-crop column of the embeddings file; it "
                f"has {sorted(obs)}"
            )
        batch = np.asarray(obs[key])[main["rows"]]
        X = center_scale_by_batch(main["X"], batch)
        fixed = self.evaluate({**main, "X": X, "X_fit": None, "reference": None}, gt)
        self.summary["evaluation_corrected"] = {"batch_key": key, **fixed.to_dict()}
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
        self.sections.append(
            (
                f"Batch correction ({key})",
                [
                    f"The model's encodings scored as they are and after centring and scaling "
                    f"every feature within each {key} ({n} values among these crops).",
                    {"header": header, "rows": rows},
                ],
            )
        )

    def hidden_section(self, ev: Evaluation) -> None:
        rows = [
            [
                r["protein"],
                r["true"],
                r["predicted"],
                r["r"],
                "yes" if r["hit"] else "no",
                ", ".join(r["top3"]),
            ]
            for r in ev.hidden
        ]
        self.sections.append(
            (
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
        )

    def spectra_section(
        self,
        main: dict[str, Any],
        spec: Any,
        fam_map: Mapping[str, str],
        *,
        n_clusters: int,
        crops: Any,
    ) -> None:
        num_codes = main["num_codes"]
        items: list[Any] = []
        used = np.zeros(0, dtype=int)
        if spec.groups.size >= 2:
            used = np.flatnonzero(spec.spectra.std(axis=0) > 0)
            self.summary["codes_used"] = int(used.size)
            items.append(
                f"{spec.groups.size} proteins; {used.size} of {num_codes} local codes vary "
                "between proteins (the others are never used or constant and are left out)."
            )
        if used.size >= 2:
            bic, code_cluster = self._feature_clusters(spec, used, n_clusters, items)
            self._representatives(main, bic, code_cluster, crops, items, fam_map)
            self._family_spectra(spec, used, bic, fam_map, items)
        self.sections.append(("Feature spectra", items))

    def _feature_clusters(
        self, spec: Any, used: np.ndarray, n_clusters: int, items: list[Any]
    ) -> tuple[Any, np.ndarray]:
        """Bicluster the used codes' correlation; write spectra.npz and the clusters."""
        num_codes = spec.spectra.shape[1]
        corr = code_correlation(spec.spectra)[np.ix_(used, used)]
        bic = bicluster(corr, n_clusters=min(n_clusters, int(used.size)))
        code_cluster = np.full(num_codes, -1)
        code_cluster[used] = bic.labels
        roman = self.figs.roman
        self.files["feature_clusters.csv"] = _write_csv(
            self.out / "feature_clusters.csv",
            ["code", "cluster", "position"],
            [
                [int(used[j]), roman(int(bic.labels[j])), int(pos)]
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
            correlation=corr,
            order=used[bic.order],
            clusters=code_cluster,
        )
        self.files["spectra.npz"] = _atomic_write(self.out / "spectra.npz", buf.getvalue())
        self.clusters = CodeClusters(order=used[bic.order], cluster_of_code=code_cluster)
        items += [
            "Figure: correlation between the local codes across proteins (red: two codes "
            "are used by the same proteins; blue: by different ones), codes ordered by "
            "hierarchical clustering; the bar below splits them into feature clusters "
            "(roman numerals), groups of codes that describe one kind of pattern (Fig. 4a).",
            self.save("code_correlation", self.figs.plot_correlation_heatmap(corr, bic)),
        ]
        self.summary["feature_clusters"] = int(bic.n_clusters)
        return bic, code_cluster

    def _representatives(
        self,
        main: dict[str, Any],
        bic: Any,
        code_cluster: np.ndarray,
        crops: Any,
        items: list,
        fam_map: Mapping[str, str],
    ) -> None:
        """The crops that best represent each feature cluster: a table and, with a store, images."""
        pids_all, crop_index = main["pids_all"], main["crop_index"]
        lut = np.where(code_cluster >= 0, code_cluster, bic.n_clusters)
        picks = representative_images(main["local_idx"], lut, n=4, groups=pids_all)
        picks = picks[: bic.n_clusters]
        share = cluster_shares(main["local_idx"], lut, bic.n_clusters + 1)
        fam = fam_map or {}
        rows = []
        for c in range(bic.n_clusters):
            crops_c = [
                f"{pids_all[i]} #{int(crop_index[i])} ({share[i, c]:.0%})"
                for i in picks[c]
                if i >= 0
            ]
            users = int((share[:, c] >= 0.1).sum())
            rows.append([self.figs.roman(c), int((code_cluster == c).sum()), users, *crops_c])
        header = [
            "feature cluster",
            "codes",
            "crops using it (≥ 10% of codes)",
            "representative crops (protein #crop, share of its codes)",
            "",
            "",
            "",
        ]
        items.append({"header": header, "rows": rows})
        fig = _representative_crops(
            crops, main["store"], crop_index, picks, pids_all, self.figs, fam, share
        )
        if fig is not None:
            items += [
                "Figure: for each feature cluster, the crops of different proteins whose "
                "local codes fall most often into it (protein channel; title: protein, "
                "family, share of the crop's codes in the cluster). A crop appears for one "
                "cluster only; clusters with few codes may have few crops that use them.",
                self.save("representative_crops", fig),
            ]

    def _family_spectra(
        self, spec: Any, used: np.ndarray, bic: Any, fam_map: Mapping[str, str], items: list
    ) -> None:
        """Family consensus spectra and each protein's best-correlated families."""
        fam_per_protein = np.array([fam_map.get(str(p)) for p in spec.groups], dtype=object)
        if sum(v is not None for v in fam_per_protein) < 1:
            return
        fams, fam_spectra = mean_by_label(spec.spectra, fam_per_protein)
        fig = self.figs.plot_family_spectra([str(x) for x in fams], fam_spectra[:, used], bic)
        items += [
            "Figure: the feature spectrum of each family — how often its proteins' crops "
            "use each local code, codes in the order of the heatmap above, shaded by "
            "feature cluster. Families differ in which clusters they use (Fig. 4b).",
            self.save("family_spectra", fig),
        ]
        acc = _loo_localization_accuracy(spec.spectra[:, used], fam_per_protein)
        self.summary["localization_accuracy_loo"] = acc
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
        self.files["localization.csv"] = _write_csv(
            self.out / "localization.csv",
            ["protein_id", "annotated", "best", "second", "third"],
            loc_rows,
        )
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
            fig = self.figs.plot_localization(ranking, protein=top)
            items += [
                f"Figure: {top}, a protein without annotation: the correlation of its "
                "spectrum with each family's; the tallest bar is its most likely "
                "localization (the paper's FAM241A analysis).",
                self.save("localization_example", fig),
            ]

    def explorer(
        self,
        main: dict[str, Any],
        Y: np.ndarray,
        gt: GroundTruth,
        spectra: Any,
        *,
        crops: Any,
        max_thumbnails: int,
    ) -> None:
        """Write ``explorer.html`` and link it at the top of the atlas section."""
        from cyto.analysis._explorer_data import explorer_data
        from cyto.analysis._explorer_page import write_explorer

        rows = main["rows"]
        _log(self.verbose, f"explorer: {rows.size} crops")
        with Embeddings(main["path"]) as emb:
            obs = {k: v[rows] for k, v in emb.obs().items()}
        local = main["local_idx"][rows] if main["local_idx"] is not None else None
        data = explorer_data(
            Y,
            main["pids_all"][rows],
            main["X"],
            gt=gt,
            crop_index=main["crop_index"][rows],
            store=crops if crops is not None else main["store"],
            obs=obs,
            local_idx=local,
            spectra=spectra,
            clusters=self.clusters,
            max_thumbnails=max_thumbnails,
            title=f"cyto atlas — {main['variant']} ({main['split_used']}, {rows.size} crops)",
        )
        path = write_explorer(self.out / "explorer.html", data)
        self.files["explorer.html"] = path
        link = Link(
            path,
            "Open the interactive atlas (explorer.html): zoom, crops on hover, "
            "find a protein, its spectrum and nearest proteins on click",
        )
        for heading, items in self.sections:
            if heading == "Localization atlas":
                items.insert(0, link)
                return
        self.sections.insert(0, ("Localization atlas", [link]))

    def write_h5ad(self, main: dict[str, Any], Y: np.ndarray, gt: GroundTruth) -> None:
        """``atlas.h5ad``: the atlas crops with the UMAP and labels (when anndata is here)."""
        import importlib.util

        if importlib.util.find_spec("anndata") is None:
            self.summary.setdefault("notes", []).append(
                "atlas.h5ad not written: pip install 'cyto[anndata]'"
            )
            return
        from cyto.analysis._ground_truth import anndata_labels
        from cyto.data import export_h5ad

        rows = main["rows"]
        self.files["atlas.h5ad"] = export_h5ad(
            main["path"],
            self.out / "atlas.h5ad",
            rows=rows,
            obs=anndata_labels(gt, main["pids_all"][rows]),
            obsm={"X_umap": np.asarray(Y, dtype=np.float32)},
            uns={"umap": {"params": {k: str(v) for k, v in self.umap.items()}}},
        )

    def ablation_section(self, ablation: Any) -> None:
        diffs, images, titles = _ablation_maps(ablation)
        fig = self.figs.plot_difference_maps(images, diffs, titles=titles)
        self.sections.append(
            (
                "Feature interpretation",
                [
                    "Difference between the normal and the ablated reconstruction (red) when one "
                    "code or feature cluster is zeroed before decoding (Fig. 5).",
                    self.save("difference_maps", fig),
                ],
            )
        )

    def finish(
        self,
        t0: float,
        variant: str,
        table: ScoreTable | None,
        ev: Evaluation,
        *,
        page: bool = True,
    ) -> AnalysisReport:
        """Write scores.json and (unless ``page`` is False) the page; the report object."""
        self.summary["seconds"] = round(time.perf_counter() - t0, 2)
        self.files["scores.json"] = _atomic_write(
            self.out / "scores.json",
            json.dumps(self.summary, indent=2, default=str).encode("utf-8"),
        )
        files = [[str(p.relative_to(self.out))] for p in self.files.values()]
        # named from the analysis folder, so they read right on a page that holds more
        files = [[f"{self.out.name}/{f}"] for (f,) in files]
        self.sections.append(glossary_section())
        self.sections.append(("Files", [{"header": ["file"], "rows": files}]))
        _atomic_write(self.out / SECTIONS_FILE, _sections_json(self.sections, self.out))
        html = None
        if page:
            html = write_report(
                self.out / "report.html",
                title=f"cyto analysis — {variant}",
                sections=self.sections,
            )
            _log(self.verbose, f"report written to {html} ({self.summary['seconds']} s)")
        return AnalysisReport(
            out_dir=self.out,
            html=html,
            scores=table,
            evaluation=ev,
            summary=self.summary,
            files=self.files,
            sections=self.sections,
        )


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
    """The "Glossary" section (a table of :data:`GLOSSARY`)."""
    return ("Glossary", [{"header": ["term", "meaning"], "rows": [list(t) for t in GLOSSARY]}])


#: The page's sections, kept beside the figures so another page can hold them.
SECTIONS_FILE = "sections.json"


def _sections_json(sections: Sequence[tuple[str, Sequence[Any]]], root: Path) -> bytes:
    """Sections as JSON: text and tables as they are, figures as paths below ``root``."""

    def item(x: Any) -> Any:
        if isinstance(x, Link):
            return {"link": x.path.relative_to(root).as_posix(), "text": x.text}
        return {"figure": x.relative_to(root).as_posix()} if isinstance(x, Path) else x

    data = [{"heading": h, "items": [item(x) for x in items]} for h, items in sections]
    return json.dumps(data, indent=1, default=str).encode("utf-8")


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
