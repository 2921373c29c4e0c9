"""``cyto analyze``: read an embeddings file, evaluate it, and write the report folder
(atlas, scores, feature spectra, explorer, AnnData, one HTML page) — the run that calls the
sections (:mod:`._sections`) and the page writer (:mod:`._page`) in turn."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cyto._atomic import write_text_atomic
from cyto._provenance import package_versions
from cyto.analysis._evaluate import Evaluation, evaluate
from cyto.analysis._explorer_data import CodeClusters
from cyto.analysis._ground_truth import GroundTruth, labels_for
from cyto.analysis._page import (
    SECTIONS_FILE,
    Link,
    ReportFiles,
    _sections_json,
    glossary_section,
    write_report,
)
from cyto.analysis._reading import (
    AtlasInput,
    _embedding_inputs,
    _embedding_paths,
    _ground_truth_of,
    _log,
    read_atlas,
)
from cyto.analysis._score import ScoreTable
from cyto.analysis._sections import (
    Section,
    ablation_section,
    atlas_section,
    batch_section,
    hidden_section,
    no_score_section,
    retrieval_section,
    score_section,
    screen_section,
    spectra_section,
)
from cyto.analysis._spectra import FeatureSpectra, feature_spectra
from cyto.data import output_folder
from cyto.data._embeddings import Embeddings

__all__ = ["AnalysisReport", "analyze_embeddings"]


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
    control: str | None = None,
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
    control : str, optional
        For a perturbation screen (``protein_id`` = the perturbation, a ``well`` column):
        the control perturbation. A section then scores the encodings on well profiles
        by phenotypic activity and consistency (:func:`~cyto.analysis.phenotypic_activity`),
        also in ``scores.json`` → ``screen``.
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
        main = read_atlas(
            emb_paths[0], local=True, allow_degenerate=allow_degenerate, crops=crops, **read
        )
        run.describe_input(main)
        gt = _ground_truth_of(ground_truth, complexes, min_grade, main.pids)
        spectra = None
        if main.local_idx is not None and main.num_codes > 0:
            _log(verbose, f"feature spectra: {main.local_idx.shape[0]} crops")
            spectra = feature_spectra(main.local_idx, main.pids_all, main.num_codes)
        ev = run.evaluate(main, gt, spectra=spectra, hidden_seed=hidden_seed)
        if baselines is not None:
            ev.baselines = _baselines_of(baselines)
        run.summary["umap"] |= {"fit_split": fit_split or main.split_used}
        run.write_umap_csv(main, ev.umaps[0], gt)
        # further model variants (ablation study, Fig. 6), read only when there is a score
        others = (
            read_atlas(p, local=False, allow_degenerate=allow_degenerate, **read)
            for p in emb_paths[1:]
        )
        table = run.score(main.variant, ev, others, gt)
        run.add_sections(
            main,
            ev,
            table,
            gt,
            spectra,
            highlight=highlight,
            batch_key=batch_key,
            n_clusters=n_clusters,
            ablation=ablation,
            control=control,
        )
        if explorer:
            run.explorer(main, ev.umaps[0], gt, spectra, crops=None, max_thumbnails=max_thumbnails)
        run.write_h5ad(main, ev.umaps[0], gt)
        return run.finish(t0, main.variant, table, ev, page=page)


def _baselines_of(baselines: Any) -> dict[str, Any]:
    """Baseline scores given as a mapping or a JSON file (``cyto demo``'s baselines.json)."""
    if isinstance(baselines, Mapping):
        return dict(baselines)
    path = Path(baselines)
    if not path.is_file():
        raise FileNotFoundError(f"`baselines` file not found: {path}")
    return dict(json.loads(path.read_text(encoding="utf-8")))


@dataclass
class _AnalysisRun:
    """The outputs of one :func:`analyze_embeddings` call, built section by section."""

    out: Path
    verbose: bool
    umap: dict[str, Any]
    summary: dict[str, Any]
    written: ReportFiles = field(init=False)
    sections: list[Section] = field(default_factory=list)
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
        self.written = ReportFiles(self.out)
        self.summary["umap"] = {}

    @property
    def files(self) -> dict[str, Path]:
        """Every file written so far, by name."""
        return self.written.files

    def describe_input(self, main: AtlasInput) -> None:
        rows, n_all = main.rows, main.n_all
        _log(self.verbose, f"{n_all} crops, atlas on split '{main.split_used}' ({rows.size} crops)")
        self.summary.update(
            encoding_health=main.health.to_dict(),
            n_crops=int(n_all),
            atlas_split=main.split_used,
            atlas_crops=int(rows.size),
            proteins=int(np.unique(main.pids_all).size),
        )

    def evaluate(self, main: AtlasInput, gt: GroundTruth, **kwargs: Any) -> Evaluation:
        """:func:`evaluate` one variant with this run's UMAP options."""
        name, u = main.variant, self.umap
        ev = evaluate(
            main.X,
            main.pids,
            gt,
            reference=main.reference,
            fit=main.X_fit,
            umap_seeds=u["seeds"],
            umap_options={k: u[k] for k in ("n_neighbors", "min_dist", "backend")},
            log=lambda msg: _log(self.verbose, f"{name}: {msg}"),
            **kwargs,
        )
        self.summary["umap"] |= {k: ev.umap[k] for k in ("backend", "seeds")}
        self.summary["umap"] |= {k: u[k] for k in ("n_neighbors", "min_dist")}
        return ev

    def write_umap_csv(self, main: AtlasInput, Y: np.ndarray, gt: GroundTruth) -> None:
        rows = main.rows
        crop_labels = {lv: gt.labels(lv, main.pids) for lv in gt.levels}
        table = [
            [
                int(main.crop_index[r]),
                main.pids_all[r],
                main.fov_all[r],
                main.split_all[r],
                float(x),
                float(y),
            ]
            + [crop_labels[lv][i] or "" for lv in gt.levels]
            for i, (r, (x, y)) in enumerate(zip(rows, Y))
        ]
        header = ["crop_index", "protein_id", "fov_id", "split", "umap1", "umap2", *gt.levels]
        self.written.csv("umap.csv", header, table)

    def score(
        self,
        variant: str,
        ev: Evaluation,
        others: Iterable[AtlasInput],
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
            name = other.variant
            while name in names:
                name += "'"
            names.append(name)
            o_ev = self.evaluate(replace(other, variant=name), gt)
            per_variant[name] = {lv: o_ev.scores[lv]["values"] for lv in ev.scores}
        table = ScoreTable.from_scores(per_variant)
        self.summary["scores"] = table.to_records()
        seeds = self.umap["seeds"]
        self.written.csv(
            "scores.csv",
            ["variant", "level", "umap_seed", "score"],
            [
                [v, lv, int(s), float(x)]
                for v in table.variants
                for lv in table.levels
                for s, x in zip(seeds, table.scores[v][lv])
            ],
        )
        return table

    def add_sections(
        self,
        main: AtlasInput,
        ev: Evaluation,
        table: ScoreTable | None,
        gt: GroundTruth,
        spectra: FeatureSpectra | None,
        *,
        highlight: Sequence[str] | None,
        batch_key: str | None,
        n_clusters: int,
        ablation: Any,
        control: str | None = None,
    ) -> None:
        """Append the page's sections (:mod:`._sections`) in order, keeping what they
        return for the summary."""
        pids, fam_map = main.pids, gt.family_of()
        color_labels = labels_for(pids, fam_map) if gt.family_level else np.full(pids.size, None)
        Y = ev.umaps[0]
        self.sections.append(
            atlas_section(main, Y, color_labels, gt.family_level, fam_map, highlight, self.written)
        )
        if table is not None:
            n_seeds = len(self.umap["seeds"])
            self.sections.append(score_section(table, ev, gt, n_seeds, self.written))
        else:
            self.sections.append(no_score_section(ev))
        if ev.retrieval:
            self.sections.append(retrieval_section(main.variant, ev))
        if batch_key is not None:
            section, corrected = batch_section(
                main, ev, batch_key, lambda fixed: self.evaluate(fixed, gt)
            )
            self.summary["evaluation_corrected"] = corrected
            self.sections.append(section)
        if control is not None:
            section, self.summary["screen"] = screen_section(main, gt, control)
            self.sections.append(section)
        if ev.hidden:
            self.sections.append(hidden_section(ev))
        if spectra is not None:
            found = spectra_section(
                main, spectra, fam_map, n_clusters=n_clusters, crops=None, files=self.written
            )
            self.summary |= found.summary
            self.clusters = found.clusters
            self.sections.append(found.section)
        if ablation is not None:
            self.sections.append(ablation_section(ablation, self.written))

    def explorer(
        self,
        main: AtlasInput,
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

        rows = main.rows
        _log(self.verbose, f"explorer: {rows.size} crops")
        with Embeddings(main.path) as emb:
            obs = {k: v[rows] for k, v in emb.obs().items()}
        local = main.local_idx[rows] if main.local_idx is not None else None
        data = explorer_data(
            Y,
            main.pids,
            main.X,
            gt=gt,
            crop_index=main.crop_index[rows],
            store=crops if crops is not None else main.store,
            obs=obs,
            local_idx=local,
            spectra=spectra,
            clusters=self.clusters,
            max_thumbnails=max_thumbnails,
            title=f"cyto atlas — {main.variant} ({main.split_used}, {rows.size} crops)",
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

    def write_h5ad(self, main: AtlasInput, Y: np.ndarray, gt: GroundTruth) -> None:
        """``atlas.h5ad``: the atlas crops with the UMAP and labels (when anndata is here)."""
        import importlib.util

        if importlib.util.find_spec("anndata") is None:
            self.summary.setdefault("notes", []).append(
                "atlas.h5ad not written: pip install 'cyto[anndata]'"
            )
            return
        from cyto.analysis._ground_truth import anndata_labels
        from cyto.data import export_h5ad

        self.files["atlas.h5ad"] = export_h5ad(
            main.path,
            self.out / "atlas.h5ad",
            rows=main.rows,
            obs=anndata_labels(gt, main.pids),
            obsm={"X_umap": np.asarray(Y, dtype=np.float32)},
            uns={"umap": {"params": {k: str(v) for k, v in self.umap.items()}}},
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
        self.written.text("scores.json", json.dumps(self.summary, indent=2, default=str))
        files = [[str(p.relative_to(self.out))] for p in self.files.values()]
        # named from the analysis folder, so they read right on a page that holds more
        files = [[f"{self.out.name}/{f}"] for (f,) in files]
        self.sections.append(glossary_section())
        self.sections.append(("Files", [{"header": ["file"], "rows": files}]))
        write_text_atomic(self.out / SECTIONS_FILE, _sections_json(self.sections, self.out))
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
