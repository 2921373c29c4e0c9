"""The main job, end to end: synthetic atlas → crops → training → embeddings → report.

This is the thin glue that joins the layers (the only module besides the CLI that
imports more than one of them). Every stage writes its output into one folder and a
record ``stages/<name>.json`` (seconds, one-line summary); a stage whose record exists
is skipped, so a stage can be rerun alone by naming it (its record and output are
replaced) and a killed demo continues where it stopped.

Stages of :func:`run_demo`:

``synth``       :func:`cyto.data.generate_atlas` → ``atlas/`` (TIFF stacks, manifest,
                ground truth)
``preprocess``  :func:`cyto.preprocess.preprocess_dataset` → ``crops.h5``
``train``       :func:`cyto.nn.train` → ``run/``
``embed``       :func:`cyto.nn.embed` → ``embeddings.h5`` (every crop, with its split)
``baselines``   raw-pixel and intensity-statistics baselines on the test crops →
                ``baselines.json``
``analyze``     :func:`cyto.analysis.analyze_embeddings` → ``analysis/``; then the
                k-nearest-neighbour family accuracy, the localization of hidden
                proteins and the page ``report.html``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cyto._atomic import atomic_path
from cyto._cpus import available_cpus
from cyto._provenance import output_hashes, package_versions
from cyto.analysis._evaluate import (
    baseline_scores,
    knn_both_metrics,
    knn_family_accuracy,
    localize_hidden,
)
from cyto.data import Embeddings, RunDir

__all__ = [
    "ABLATION_VARIANTS",
    "DEMO_PRESETS",
    "STAGES",
    "AblationResult",
    "AblationVariant",
    "DemoPreset",
    "DemoResult",
    "StageRecord",
    "baseline_scores",
    "knn_family_accuracy",
    "localize_hidden",
    "run_ablation",
    "run_demo",
    "stage_hashes",
]

STAGES: tuple[str, ...] = ("synth", "preprocess", "train", "embed", "baselines", "analyze")


@dataclass(frozen=True)
class DemoPreset:
    """Sizes of one demo run: the atlas, the model preset and the training budget.

    Parameters
    ----------
    name : str
        Preset name.
    atlas : dict
        Overrides of :class:`cyto.data.SyntheticAtlasConfig`.
    model_preset : str
        :meth:`cyto.nn.CytoselfConfig.preset` name.
    batch_size, max_epochs, lr : int, int, float
        Training budget (see :class:`cyto.nn.TrainConfig`).
    umap_seeds : tuple of int
        UMAP seeds of the clustering scores (mean ± s.e.m. over them).
    model_overrides : dict
        Fields replacing those of the model preset.
    monitor : str
        Validation metric of early stopping and the best checkpoint (see
        :class:`cyto.nn.TrainConfig`; default ``"task_loss"`` as in ``cyto train``);
        variants without the identification task fall back to ``"loss"`` when it names
        a classification metric.
    """

    name: str
    atlas: Mapping[str, Any]
    model_preset: str
    batch_size: int
    max_epochs: int
    lr: float = 4e-4
    umap_seeds: tuple[int, ...] = (0, 1, 2)
    model_overrides: Mapping[str, Any] = field(default_factory=dict)
    monitor: str = "task_loss"

    def train_config(
        self,
        *,
        seed: int,
        device: str,
        progress: bool,
        classify: bool = True,
        threads: int = 0,
        deterministic: bool = False,
    ) -> Any:
        """The :class:`cyto.nn.TrainConfig` of this preset (imports torch)."""
        from cyto.nn import TrainConfig

        monitor = self.monitor
        if not classify and monitor.startswith(("accuracy", "cls")):
            monitor = "loss"
        return TrainConfig(
            preset=self.model_preset,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            lr=self.lr,
            seed=int(seed),
            device=device,
            progress=progress,
            num_workers=0,
            monitor=monitor,
            threads=int(threads),
            deterministic=bool(deterministic),
        )


DEMO_PRESETS: dict[str, DemoPreset] = {
    # End-to-end smoke test: a minute on 2 CPU cores, scores above chance only.
    "tiny": DemoPreset(
        name="tiny",
        atlas={
            "families": ("nucleolus_gc", "er", "membrane", "mitochondria"),
            "complexes_per_family": 2,
            "complex_size": (2, 2),
            "n_proteins": None,
            "fields_per_protein": 6,
            "field_size": 256,
            "z_planes": 4,
        },
        model_preset="tiny",
        batch_size=32,
        max_epochs=15,
        lr=1e-3,
        umap_seeds=(0,),
    ),
    # The default: the whole synthetic atlas, ≤ 10 minutes on 2 CPU cores.
    "small": DemoPreset(
        name="small",
        atlas={"fields_per_protein": 5},
        model_preset="small",
        batch_size=32,
        max_epochs=6,
        lr=1e-3,
        umap_seeds=(0, 1, 2),
    ),
    # The paper's model on a larger atlas: for one GPU.
    "gpu": DemoPreset(
        name="gpu",
        atlas={"fields_per_protein": 12, "scale": 1.0},
        model_preset="paper",
        batch_size=64,
        max_epochs=40,
        lr=4e-4,
        umap_seeds=tuple(range(5)),
    ),
}


@dataclass(frozen=True)
class StageRecord:
    """What one stage did: its name, wall time, a one-line summary and what it wrote.

    ``outputs`` maps each output file or folder (relative to the demo folder) to its
    :func:`cyto._provenance.content_hash` — equal hashes mean equal numbers, whatever
    times and paths the files also record; ``versions`` are the packages it ran with
    and ``threads`` the compute threads of its torch and UMAP work.
    """

    name: str
    seconds: float
    summary: str
    skipped: bool = False
    outputs: Mapping[str, str] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    threads: int | None = None


@dataclass(frozen=True)
class DemoResult:
    """Output of :func:`run_demo`.

    Attributes
    ----------
    out_dir : Path
        The demo folder.
    report : Path or None
        ``report.html`` (None when the analyze stage did not run).
    stages : tuple of StageRecord
        Every stage, in order.
    summary : dict
        Scores, baselines, accuracy and timings (also in ``summary.json``).
    """

    out_dir: Path
    report: Path | None
    stages: tuple[StageRecord, ...]
    summary: dict[str, Any]


# --------------------------------------------------------------------------- helpers
def _resolve_preset(preset: str | DemoPreset) -> DemoPreset:
    if isinstance(preset, str):
        if preset not in DEMO_PRESETS:
            raise ValueError(f"`preset` must be one of {sorted(DEMO_PRESETS)}, got {preset!r}")
        return DEMO_PRESETS[preset]
    if not isinstance(preset, DemoPreset):
        raise TypeError(f"`preset` must be a str or DemoPreset, got {type(preset).__name__}")
    return preset


def _atomic_json(path: Path, obj: Any) -> Path:
    with atomic_path(path, mkdir=True) as tmp:
        tmp.write_text(json.dumps(_finite(obj), indent=2, default=_json_default, allow_nan=False))
    return path


def _atomic_text(path: Path, text: str) -> Path:
    with atomic_path(path, mkdir=True) as tmp:
        tmp.write_text(text)
    return path


def _finite(obj: Any) -> Any:
    """Replace NaN/inf floats by None so the JSON is standard."""
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _family_table(atlas_dir: Path) -> dict[str, dict[str, str]]:
    """``protein_id -> {"family", "complex"}`` from the atlas's ground_truth.csv."""
    import csv

    with open(atlas_dir / "ground_truth.csv", newline="") as fh:
        return {r["protein_id"]: r for r in csv.DictReader(fh)}


def _check_preprocessed(report: Any) -> Any:
    """Stop the pipeline when preprocessing produced no crops (every field failed)."""
    if report.n_crops == 0:
        reasons = "; ".join(f"{path}: {why}" for path, why in report.failed[:3])
        raise ValueError(
            f"preprocessing wrote no crops to {report.path} ({report.n_failed} of "
            f"{report.n_fovs} fields failed{': ' + reasons if reasons else ''})"
        )
    return report


def _levels(gt: Mapping[str, Mapping[str, str]], proteins: Any) -> dict[str, np.ndarray]:
    """Per-crop organelle (family) and complex labels; None for unknown proteins."""
    return {
        level: np.array([gt.get(p, {}).get(col) for p in proteins], dtype=object)
        for level, col in (("organelle", "family"), ("complex", "complex"))
    }


# --------------------------------------------------------------------------- demo
class _Demo:
    """The stages of one demo folder (internal; use :func:`run_demo`).

    Without ``data`` the input is the synthetic atlas (generated by the synth stage,
    with its own ground truth). With ``data`` it is the user's: a manifest CSV or a
    folder of per-protein folders (preprocessed by the preprocess stage with
    ``preprocess_options``) or a finished crop store (used as is), and the ground truth
    comes from the ``ground_truth`` / ``complexes`` tables, if any.
    """

    def __init__(
        self,
        out: Path,
        preset: DemoPreset,
        *,
        device: str,
        seed: int,
        progress: bool,
        threads: int = 1,
        data: Path | None = None,
        ground_truth: Path | None = None,
        complexes: Path | None = None,
        preprocess_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.out = out
        self.preset = preset
        self.device = device
        self.seed = seed
        self.threads = threads
        self.progress = progress
        self.data = data
        self.ground_truth = ground_truth
        self.complexes = complexes
        self.preprocess_options = dict(preprocess_options or {})
        self.user_store = data is not None and _is_crop_store(data)
        self.atlas = out / "atlas"
        self.crops = data if self.user_store else out / "crops.h5"  # type: ignore[assignment]
        self.run = out / "run"
        self.embeddings = out / "embeddings.h5"
        self.baselines = out / "baselines.json"
        self.analysis = out / "analysis"
        self.scores = out / "scores.json"
        self.report = out / "report.html"
        self._gt: dict[str, dict[str, str | None]] | None = None

    # outputs a stage replaces when it is rerun (never the user's own files)
    def outputs(self, stage: str) -> list[Path]:
        return {
            "synth": [self.atlas] if self.synthetic else [],
            "preprocess": [] if self.user_store else [self.crops, Path(f"{self.crops}.parts")],
            "train": [self.run],
            "embed": [self.embeddings],
            "baselines": [self.baselines],
            "analyze": [self.analysis, self.scores, self.report, self.out / "summary.json"],
        }[stage]

    # outputs whose content hashes a stage records (the numbers, not logs or figures)
    def hashed(self, stage: str) -> list[Path]:
        a = self.analysis
        return {
            "synth": [self.atlas] if self.synthetic else [],
            "preprocess": [] if self.user_store else [self.crops],
            "train": [RunDir(self.run).best, RunDir(self.run).split_file],
            "embed": [self.embeddings],
            "baselines": [self.baselines],
            "analyze": [
                *(a / n for n in ("umap.csv", "scores.csv", "spectra.npz", "localization.csv")),
                a / "feature_clusters.csv",
                self.scores,
            ],
        }[stage]

    # ------------------------------------------------------------------ ground truth
    @property
    def synthetic(self) -> bool:
        return self.data is None

    @property
    def gt(self) -> dict[str, dict[str, str | None]]:
        """``protein_id -> {"family", "complex"}`` (None where a level has no label)."""
        if self._gt is None:
            if self.synthetic:
                self._gt = dict(_family_table(self.atlas))  # type: ignore[arg-type]
            else:
                self._gt = _ground_truth_table(self.ground_truth, self.complexes)
        return self._gt

    @property
    def exclude(self) -> dict[str, list[str]]:
        # the synthetic 'mixed' family has two annotations: not a single localization
        return {"organelle": ["mixed"]} if self.synthetic else {}

    def _eval_rows(self, split: np.ndarray) -> tuple[np.ndarray, str]:
        """Rows scored by baselines and analysis: the test split, or every crop."""
        test = np.flatnonzero(split == 2)
        if test.size:
            return test, "test"
        if self.synthetic:
            raise ValueError(
                "the test split is empty: every protein needs at least 5 fields of view "
                "for an 8:1:1 split grouped by field"
            )
        return np.arange(split.size), "all"

    # ------------------------------------------------------------------ stages
    def synth(self) -> str:
        if not self.synthetic:
            return self._describe_input()
        from cyto.data import SyntheticAtlasConfig, generate_atlas

        cfg = SyntheticAtlasConfig(seed=self.seed, **dict(self.preset.atlas))
        generate_atlas(self.atlas, cfg, n_jobs=os.cpu_count() or 1, progress=self.progress)
        info = json.loads((self.atlas / "synth.json").read_text())
        n_fields = sum(1 for _ in open(self.atlas / "manifest.csv")) - 1
        n_prot = len(_family_table(self.atlas))
        return f"{n_prot} proteins, {n_fields} fields of view ({info.get('image_size', '?')} px)"

    def _describe_input(self) -> str:
        """The synth stage on user data: check and describe the input, generate nothing."""
        if self.user_store:
            from cyto.data import CropStore

            with CropStore(self.crops) as store:
                what = (
                    f"crop store {self.data}: {len(store)} crops of "
                    f"{len(set(store.protein_ids))} proteins"
                )
        else:
            from cyto.preprocess import list_fovs

            fovs = list_fovs(self.data)  # type: ignore[arg-type]
            what = (
                f"{self.data}: {len(fovs)} fields of view of "
                f"{len({f.protein_id for f in fovs})} proteins"
            )
        fam = sum(1 for r in self.gt.values() if r["family"])
        cpx = sum(1 for r in self.gt.values() if r["complex"])
        truth = (
            f"ground truth: {fam} proteins with an organelle label, {cpx} with a complex"
            if self.gt
            else "no ground truth (no clustering scores)"
        )
        return f"no synthetic atlas, user data: {what}; {truth}"

    def preprocess(self) -> str:
        if self.user_store:
            from cyto.data import CropStore

            with CropStore(self.crops) as store:
                return f"crop store used as is: {len(store)} crops, channels {store.channels}"
        from cyto.preprocess import preprocess_dataset

        if self.synthetic:
            source = self.atlas / "manifest.csv"
            options = dict(json.loads((self.atlas / "synth.json").read_text())["preprocess_hint"])
        else:
            source, options = self.data, {}  # type: ignore[assignment]
        options.update(self.preprocess_options)
        rep = _check_preprocessed(
            preprocess_dataset(source, self.crops, progress=self.progress, **options)
        )
        return f"{rep.n_crops} crops from {rep.n_fovs} fields ({rep.n_failed} failed)"

    def train(self) -> str:
        from cyto.nn import train

        p = self.preset
        cfg = p.train_config(
            seed=self.seed,
            device=self.device,
            progress=self.progress,
            threads=self.threads,
            deterministic=True,
        )
        resume = RunDir(self.run).resumable
        train(
            self.crops,
            self.run,
            config=cfg,
            model_overrides=dict(p.model_overrides) or None,
            resume=resume,
        )
        summary = RunDir(self.run).read_summary()
        best = summary.get("best_loss")
        return (
            f"{summary.get('epochs', '?')} epochs, best validation "
            f"{summary.get('monitor', 'loss')} {best if best is None else round(abs(best), 4)} "
            f"at epoch {int(summary.get('best_epoch', -1)) + 1} (of 1..{summary.get('epochs')}) "
            f"(stop: {summary.get('stop_reason')})"
        )

    def embed(self) -> str:
        from cyto.nn import embed

        embed(
            self.run,
            self.crops,
            self.embeddings,
            device=self.device,
            progress=self.progress,
            threads=self.threads,
        )
        with Embeddings(self.embeddings) as emb:
            n, d = emb.n, int(np.prod(emb.shape("global")[1:]))
        return f"{n} crops encoded ({d}-dim global encodings)"

    def baselines_(self) -> str:
        from cyto.data import CropStore

        if not self.gt:
            _atomic_json(self.baselines, {})
            return "skipped: no ground truth to score against"
        rows, where = self._eval_rows(RunDir(self.run).read_split())
        with CropStore(self.crops) as store:
            crops = store.read(rows)
            proteins = store.protein_ids[rows]
            pch = list(store.channels).index("protein") if "protein" in store.channels else 0
        # only the levels with labelled crops (a user table may give one level only)
        levels = {k: v for k, v in _levels(self.gt, proteins).items() if any(x for x in v)}
        scores = baseline_scores(
            crops,
            levels,
            protein_channel=pch,
            seeds=self.preset.umap_seeds,
            exclude=self.exclude,
        )
        _atomic_json(self.baselines, scores)
        return f"{where} crops; " + ", ".join(
            f"{b}: " + " / ".join(f"{lvl} {v['mean']:.2f}" for lvl, v in s.items())
            for b, s in scores.items()
        )

    def analyze(self) -> str:
        from cyto.analysis import analyze_embeddings

        with Embeddings(self.embeddings) as emb:
            split, proteins = emb.split, emb.protein_ids
        where = "test" if (split == "test").any() or self.synthetic else None
        rep = analyze_embeddings(
            self.embeddings,
            self.analysis,
            ground_truth=self.atlas / "annotations.csv" if self.synthetic else self.ground_truth,
            complexes=self.atlas / "complexes.csv" if self.synthetic else self.complexes,
            split=where,
            umap_seeds=self.preset.umap_seeds,
            crops=self.crops,
            verbose=self.progress,
            page=False,  # its sections go on the demo's one page
        )
        gt = self.gt
        fam = _levels(gt, proteins)["organelle"]
        train_rows = np.flatnonzero(split == "train")
        test_rows = np.flatnonzero(split == "test")
        knn: dict[str, float] = {}
        if train_rows.size and test_rows.size:
            with Embeddings(self.embeddings) as emb:
                X_train = emb.read("global", train_rows).reshape(len(train_rows), -1)
                X_test = emb.read("global", test_rows).reshape(len(test_rows), -1)
            knn = knn_both_metrics(X_train, fam[train_rows], X_test, fam[test_rows])

        loc: list[dict[str, Any]] = []
        spectra_file = self.analysis / "spectra.npz"
        if spectra_file.exists():  # absent when no code varies across proteins
            spectra = np.load(spectra_file, allow_pickle=False)
            sp_proteins = [str(p) for p in spectra["proteins"]]
            rng = np.random.default_rng(self.seed)
            by_family: dict[str, list[str]] = {}
            for p in sp_proteins:
                if gt.get(p, {}).get("family"):
                    by_family.setdefault(str(gt[p]["family"]), []).append(p)
            # a hidden protein needs another protein of its family to build the consensus
            hidden = [
                str(rng.choice(sorted(ps))) for f, ps in sorted(by_family.items()) if len(ps) > 1
            ]
            families = {p: str(r["family"]) for p, r in gt.items() if r.get("family")}
            if hidden:
                loc = localize_hidden(spectra["spectra"], sp_proteins, families, hidden=hidden)
        hit_rate = float(np.mean([r["hit"] for r in loc])) if loc else None

        baselines = json.loads(self.baselines.read_text()) if self.baselines.exists() else {}
        # analyze_embeddings scores one variant here: index its records by level
        scores = {r["level"]: r for r in rep.summary.get("scores", [])}
        _atomic_json(
            self.scores,
            {
                "evaluated_on": where or "all",
                "knn_family_accuracy": knn,
                "hidden_localization": loc,
                "hidden_hit_rate": hit_rate,
                "baselines": baselines,
                "scores": scores,
            },
        )
        parts = [f"{where or 'all'} crops"]
        if scores:
            parts.append(
                "Γ "
                + ", ".join(f"{lvl} {s.get('mean', float('nan')):.2f}" for lvl, s in scores.items())
            )
        if knn:
            parts.append(
                f"kNN family accuracy {knn['euclidean']:.3f} (Euclidean), "
                f"{knn['cosine']:.3f} (cosine)"
            )
        if hit_rate is not None:
            parts.append(f"hidden proteins localized {hit_rate:.0%}")
        return "; ".join(parts)


def _ground_truth_table(
    ground_truth: Path | None, complexes: Path | None
) -> dict[str, dict[str, str | None]]:
    """``protein_id -> {"family", "complex"}`` from user tables (None where unlabelled)."""
    from cyto.analysis import load_complexes, load_ground_truth

    levels: dict[str, dict[str, str]] = {}
    if ground_truth is not None:
        levels.update(load_ground_truth(ground_truth))
    if complexes is not None:
        levels["complex"] = load_complexes(complexes)
    fam, cpx = levels.get("organelle", {}), levels.get("complex", {})
    return {p: {"family": fam.get(p), "complex": cpx.get(p)} for p in {*fam, *cpx}}


def _demo_inputs(
    data: str | os.PathLike | None,
    ground_truth: str | os.PathLike | None,
    complexes: str | os.PathLike | None,
    options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Check the own-data arguments of run_demo / run_ablation; paths as Path (None if absent)."""
    out: dict[str, Any] = {}
    for name, value in (("data", data), ("ground_truth", ground_truth), ("complexes", complexes)):
        if value is None:
            out[name] = None
            continue
        if not isinstance(value, str | os.PathLike):
            raise TypeError(f"`{name}` must be a path, got {type(value).__name__}")
        path = Path(value)
        if not path.exists():
            raise FileNotFoundError(f"`{name}`: {str(path)!r} does not exist")
        out[name] = path
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"`preprocess_options` must be a mapping, got {type(options).__name__}")
    out["options"] = dict(options or {})
    if data is None:
        given = [k for k in ("ground_truth", "complexes") if out[k] is not None]
        if out["options"]:
            given.append("preprocess_options")
        if given:
            raise ValueError(
                f"{', '.join(f'`{g}`' for g in given)} only apply with `data` (your own "
                "images); the synthetic atlas brings its own ground truth and settings"
            )
    elif out["options"] and _is_crop_store(out["data"]):
        raise ValueError(
            "`preprocess_options` apply to a manifest or folder `data`; "
            f"{str(out['data'])!r} is a crop store, already preprocessed"
        )
    return out


def _is_crop_store(path: Path) -> bool:
    """True when ``path`` is an HDF5 file (a crop store), judged by its signature."""
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        return fh.read(8) == b"\x89HDF\r\n\x1a\n"


def _num(x: Any, spec: str) -> str:
    return "–" if x is None or not np.isfinite(x) else format(x, spec)


def _mean_sem_text(d: Mapping[str, Any] | None) -> str:
    if not d:
        return "–"
    sem = d.get("sem")
    return _num(d.get("mean"), ".2f") + ("" if sem is None else f" ± {_num(sem, '.2f')}")


def _stages_section(demo: _Demo, records: Sequence[StageRecord]) -> tuple[str, list[Any]]:
    slowest = max(records, key=lambda r: r.seconds)
    return (
        "Stages",
        [
            f"Preset {demo.preset.name!r}, seed {demo.seed}. Slowest stage: {slowest.name} "
            f"({slowest.seconds:.1f} s).",
            {
                "header": ["stage", "seconds", "summary"],
                "rows": [[r.name, f"{r.seconds:.1f}", r.summary] for r in records],
            },
        ],
    )


def _scores_section(demo: _Demo, extra: Mapping[str, Any]) -> tuple[str, list[Any]]:
    scores = extra.get("scores", {})
    rows = [
        [
            "cyto model (global encodings)",
            _mean_sem_text(scores.get("organelle")),
            _mean_sem_text(scores.get("complex")),
        ]
    ]
    for name, b in extra.get("baselines", {}).items():
        rows.append(
            [
                f"baseline: {name}",
                _mean_sem_text(b.get("organelle")),
                _mean_sem_text(b.get("complex")),
            ]
        )
    where = extra.get("evaluated_on", "test")
    levels = (
        "Organelle level: localization families (the 'mixed' family excluded); "
        if demo.synthetic
        else "Organelle level: the ground-truth table's localization labels; "
    )
    empty_test = (
        ""
        if where == "test"
        else " The test split is empty (too few fields of view per protein), "
        "so every crop is scored, training crops included."
    )
    knn = ", ".join(
        f"{_num(v, '.3f')} ({m})" for m, v in (extra.get("knn_family_accuracy") or {}).items()
    )
    return (
        f"Clustering scores (Γ, {where} crops, mean ± s.e.m. over UMAP seeds)",
        [
            levels + "complex level: protein complexes. Higher is better." + empty_test,
            {"header": ["representation", "organelle", "complex"], "rows": rows},
            "k-nearest-neighbour (k = 15) family accuracy of the test crops' global "
            "encodings, fit on the training crops: "
            + (knn or "not computed (it needs labelled crops in the training and test splits)"),
        ],
    )


def _hidden_section(extra: Mapping[str, Any]) -> tuple[str, list[Any]]:
    loc = extra.get("hidden_localization", [])
    rows = [
        [
            r["protein"],
            r["true"],
            r["predicted"],
            r["r"],
            "yes" if r["hit"] else "no",
            ", ".join(r["top3"]),
        ]
        for r in loc
    ]
    return (
        "Localization of hidden proteins",
        [
            "One protein per family had its family hidden; its feature spectrum was "
            "ranked against the consensus spectra of the other proteins. Hit rate: "
            f"{_num(extra.get('hidden_hit_rate'), '.0%')}"
            + ("." if loc else " (needs a ground truth with two or more proteins in a family)."),
            {"header": ["protein", "true family", "predicted", "r", "hit", "top 3"], "rows": rows},
        ],
    )


def _write_demo_report(demo: _Demo, records: Sequence[StageRecord], extra: dict) -> Path:
    """The demo's one page: stages, scores, hidden proteins, then the analysis's sections."""
    from cyto.analysis import load_sections, write_report

    sections = [
        _stages_section(demo, records),
        _scores_section(demo, extra),
        _hidden_section(extra),
        *load_sections(demo.analysis),
    ]
    title = "synthetic cell atlas" if demo.synthetic else Path(str(demo.data)).name
    return write_report(demo.report, title=f"cyto demo: {title}", sections=sections)


def run_demo(
    out_dir: str | os.PathLike = "cyto-demo",
    *,
    data: str | os.PathLike | None = None,
    ground_truth: str | os.PathLike | None = None,
    complexes: str | os.PathLike | None = None,
    preprocess_options: Mapping[str, Any] | None = None,
    preset: str | DemoPreset = "small",
    device: str = "auto",
    seed: int = 0,
    threads: int = 0,
    stages: Sequence[str] | None = None,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the whole method — on the synthetic atlas, or on your data — with an HTML report.

    Parameters
    ----------
    out_dir : path-like, default "cyto-demo"
        Folder of every stage's output (created).
    data : path-like, optional
        Your own images instead of the synthetic atlas: a manifest CSV or a folder of
        per-protein folders (see :func:`cyto.preprocess.list_fovs`), preprocessed by the
        preprocess stage, or a crop store written by ``cyto preprocess`` (used as is; it
        is never modified or removed).
    ground_truth : path-like, optional
        With ``data``: the organelle-level labels, an OpenCell annotation CSV or a
        ``protein_id,family[,complex]`` table (see
        :func:`cyto.analysis.load_ground_truth`). Without it no clustering score,
        baseline, k-NN accuracy or hidden-protein localization is computed; the atlas
        and the feature spectra still are.
    complexes : path-like, optional
        With ``data``: a ``protein_id,complex`` table for the complex-level score.
    preprocess_options : mapping, optional
        With a manifest or folder ``data``: options of
        :func:`cyto.preprocess.preprocess_dataset` (e.g. ``nucleus_diameter``,
        ``downsample_factor``, ``crop_size``).
    preset : str or DemoPreset, default "small"
        ``"small"`` (≤ 10 minutes on 2 CPU cores), ``"tiny"`` (a smoke test) or
        ``"gpu"`` (the paper's model on a larger atlas, for one GPU); see
        :data:`DEMO_PRESETS`. With ``data`` only the model and training budget apply.
    device : str, default "auto"
        Training and embedding device.
    seed : int, default 0
        Seed of the atlas, the split, the training and the hidden proteins.
    threads : int, default 0
        Torch compute threads of training and embedding, fixed for the whole run
        (training also runs with deterministic algorithms). 0: the CPUs this process
        may use when the demo starts. Runs with one seed, one thread count and the same
        package versions on the same kind of CPU give identical stage hashes (see
        ``docs/reproducibility.md``); another thread count changes the training's
        floating-point sums, hence its numbers.
    stages : sequence of str, optional
        Stages to (re)run even if done; their outputs are replaced. Default: every
        stage that has not finished yet.
    progress : bool, default True
        Progress bars and stage summaries on stderr.
    echo : callable, optional
        Receives each stage's one-line summary (default: print to stderr).

    Returns
    -------
    result : DemoResult

    Raises
    ------
    FileNotFoundError
        If ``data``, ``ground_truth`` or ``complexes`` does not exist.
    ValueError
        If ``preset`` or a stage name is unknown, ground truth or preprocessing options
        are given without ``data``, or ``out_dir`` holds a demo of other input data.
    """
    preset = _resolve_preset(preset)
    inputs = _demo_inputs(data, ground_truth, complexes, preprocess_options)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"`threads` must be an integer >= 0, got {threads!r}")
    threads = int(threads) or available_cpus()
    from cyto._optional import require

    # the analyze stage draws the report's figures: fail now, not after training
    require("matplotlib", "plot", purpose="the demo report's figures")
    rerun = set(stages or ())
    unknown = rerun - set(STAGES)
    if unknown:
        raise ValueError(f"`stages` must be names from {list(STAGES)}, got {sorted(unknown)}")
    echo = echo or _print_stderr
    out = Path(out_dir)
    _record_demo(out, preset, inputs, seed=seed, threads=threads)
    demo = _Demo(
        out,
        preset,
        device=device,
        seed=seed,
        progress=progress,
        threads=threads,
        data=inputs["data"],
        ground_truth=inputs["ground_truth"],
        complexes=inputs["complexes"],
        preprocess_options=inputs["options"],
    )
    # a rerun stage invalidates the stages after it
    first_rerun = min((STAGES.index(s) for s in rerun), default=len(STAGES))
    records = [_run_stage(demo, name, i >= first_rerun, echo) for i, name in enumerate(STAGES)]
    extra = json.loads(demo.scores.read_text())
    report = _write_demo_report(demo, records, extra)
    summary = {
        "preset": preset.name,
        "seed": seed,
        "threads": threads,
        "stages": {
            r.name: {"seconds": r.seconds, "summary": r.summary, "outputs": dict(r.outputs)}
            for r in records
        },
        **extra,
    }
    _atomic_json(out / "summary.json", summary)
    echo(f"report: {report}")
    return DemoResult(out_dir=out, report=report, stages=tuple(records), summary=summary)


def _record_demo(
    out: Path, preset: DemoPreset, inputs: Mapping[str, Any], *, seed: int, threads: int
) -> None:
    """Write ``demo.json``; refuse a folder that holds a demo of other input data."""
    out.mkdir(parents=True, exist_ok=True)
    record = out / "demo.json"
    source = {k: None if v is None else str(v) for k, v in inputs.items() if k != "options"}
    if record.exists() and any((out / "stages").glob("*.json")):
        before = json.loads(record.read_text()).get("inputs", {"data": None})
        if before.get("data") != source["data"]:
            raise ValueError(
                f"`out_dir` {str(out)!r} holds a demo of data={before.get('data')!r}, not "
                f"data={source['data']!r}; use another folder"
            )
    _atomic_json(
        record,
        {
            "preset": dataclasses.asdict(preset),
            "seed": seed,
            "threads": threads,
            "inputs": {**source, "preprocess_options": inputs["options"]},
        },
    )


def _run_stage(demo: _Demo, name: str, rerun: bool, echo: Callable[[str], None]) -> StageRecord:
    """Run one stage (or report it done): its record, with the content hashes of its outputs."""
    marker = demo.out / "stages" / f"{name}.json"
    if rerun:
        marker.unlink(missing_ok=True)
        for path in demo.outputs(name):
            _remove(path)
    if marker.exists():
        rec = StageRecord(**{**json.loads(marker.read_text()), "skipped": True})
        echo(f"[{name}] done already ({rec.seconds:.1f} s): {rec.summary}")
        return rec
    echo(f"[{name}] running ...")
    t0 = time.perf_counter()
    summary = getattr(demo, "baselines_" if name == "baselines" else name)()
    rec = StageRecord(
        name=name,
        seconds=round(time.perf_counter() - t0, 2),
        summary=summary,
        outputs=output_hashes(demo.hashed(name), demo.out),
        versions=package_versions(),
        threads=demo.threads,
    )
    _atomic_json(marker, dataclasses.asdict(rec))
    echo(f"[{name}] {rec.seconds:.1f} s: {summary}")
    return rec


def stage_hashes(out_dir: str | os.PathLike) -> dict[str, dict[str, str]]:
    """The content hashes each finished stage of a demo folder recorded.

    Two demo folders reproduce each other where these are equal (compare them with
    ``==``, or stage by stage to find the first that differs).

    Parameters
    ----------
    out_dir : path-like
        A folder written by :func:`run_demo`.

    Returns
    -------
    hashes : dict
        ``{stage: {output: sha256}}`` in stage order, for the stages that finished.

    Raises
    ------
    FileNotFoundError
        If ``out_dir`` holds no stage record.
    """
    folder = Path(out_dir) / "stages"
    found = {s: folder / f"{s}.json" for s in STAGES if (folder / f"{s}.json").is_file()}
    if not found:
        raise FileNotFoundError(
            f"`out_dir`: no stage record in {str(folder)!r} (not a demo folder)"
        )
    return {s: dict(json.loads(p.read_text()).get("outputs", {})) for s, p in found.items()}


# --------------------------------------------------------------------------- ablation
@dataclass(frozen=True)
class AblationVariant:
    """One row of the ablation table: an input channel set and model switches.

    Parameters
    ----------
    channels : tuple of str
        Crop channels fed to the model (from ``("protein", "distance", "nucleus")``).
    overrides : dict
        :class:`cyto.nn.CytoselfConfig` fields switched for this variant.
    """

    channels: tuple[str, ...] = ("protein", "distance")
    overrides: Mapping[str, Any] = field(default_factory=dict)


#: The paper's Supp. Table 1 variants, as configuration switches of one model.
ABLATION_VARIANTS: dict[str, AblationVariant] = {
    "full model": AblationVariant(),
    "no nuclear channel": AblationVariant(channels=("protein",)),
    "nucleus without distance": AblationVariant(channels=("protein", "nucleus")),
    "no vector quantization": AblationVariant(overrides={"quantize": False}),
    "no identification task": AblationVariant(overrides={"classify": False}),
    "no split quantization": AblationVariant(overrides={"split_quantization": False}),
    "no decoder": AblationVariant(overrides={"decode": False}),
}


@dataclass(frozen=True)
class AblationResult:
    """Output of :func:`run_ablation`.

    Attributes
    ----------
    out_dir : Path
        The ablation folder.
    table : cyto.analysis.ScoreTable
        Γ per variant and ground-truth level (replicates = trained models × UMAP seeds).
    knn : cyto.analysis.ScoreTable
        k-nearest-neighbour family accuracy per variant, cosine and Euclidean
        (replicates = trained models): a check on Γ that needs no UMAP.
    files : dict of str to Path
        ``ablation.md`` (both tables), ``ablation.csv`` and ``ablation.json`` (one
        record per variant and measure) and ``ablation.png`` (the Fig. 6-style chart).
    """

    out_dir: Path
    table: Any
    knn: Any
    files: dict[str, Path]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def _derive_store(source: Path, target: Path, channels: Sequence[str]) -> Path:
    """Write a crop store holding a subset of ``source``'s channels (atomic, skipped if done)."""
    from cyto.data import CropStore, write_crop_store

    if target.exists():
        return target
    with CropStore(source) as store:
        keep = [list(store.channels).index(c) for c in channels]
        crops = store.read(slice(None))[:, keep]
        write_crop_store(
            target,
            crops.astype(np.float16),
            store.protein_ids,
            fov_ids=store.fov_ids,
            centers=store.centers,
            nucleus_ids=store.nucleus_ids,
            channels=tuple(channels),
            params={**store.params, "derived_from": str(source), "channels": list(channels)},
        )
    return target


def _read_encodings(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with Embeddings(path) as emb:
        X, proteins = emb.read("global"), emb.protein_ids
    return X.reshape(len(X), -1).astype(np.float32), proteins


def _ablation_knn(
    run: Path, store: Path, test_x: np.ndarray, test_families: np.ndarray, gt: Any, device: str
) -> dict[str, float]:
    """k-NN family accuracy (train → test) of one trained model, both metrics.

    The training split's encodings are written to a temporary file next to the run and
    removed once read: only the two accuracies are kept.
    """
    from cyto.nn import embed

    tmp = run / "embeddings_train.tmp.h5"
    try:
        # an ablation compares variants: a collapsed one is a result, not an error
        embed(run, store, tmp, split="train", device=device, progress=False, allow_degenerate=True)
        train_x, train_proteins = _read_encodings(tmp)
    finally:
        tmp.unlink(missing_ok=True)
    train_families = _levels(gt, train_proteins)["organelle"]
    knn = knn_both_metrics(train_x, train_families, test_x, test_families)
    return {f"knn_{m}": knn.get(m, float("nan")) for m in ("cosine", "euclidean")}


def run_ablation(
    out_dir: str | os.PathLike = "cyto-ablate",
    *,
    data: str | os.PathLike | None = None,
    ground_truth: str | os.PathLike | None = None,
    complexes: str | os.PathLike | None = None,
    preprocess_options: Mapping[str, Any] | None = None,
    preset: str | DemoPreset = "small",
    variants: Sequence[str] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    umap_seeds: Sequence[int] = (0, 1, 2),
    device: str = "auto",
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> AblationResult:
    """Retrain the paper's model variants and tabulate their clustering scores.

    The synthetic atlas of the demo preset is preprocessed once with all three
    channels; each variant trains on the channels it needs (a derived crop store) with
    its configuration switches, once per seed. The test split of every trained model
    is embedded, projected with UMAP once per UMAP seed and scored at the organelle
    (family; 'mixed' excluded) and complex level, giving the Supp. Table 1-style table
    (mean ± s.e.m. over models × UMAPs) and the Fig. 6-style chart. A second table gives
    each variant's k-nearest-neighbour family accuracy (k = 15, fit on the training
    split's global encodings, scored on the test split), which needs no UMAP.
    Everything is kept on disk: a rerun skips finished models and scores.

    Parameters
    ----------
    out_dir : path-like, default "cyto-ablate"
        Output folder (created).
    data : path-like, optional
        Your own images instead of the synthetic atlas: a manifest CSV or per-protein
        folder (preprocessed once with the channels protein, distance and nucleus), or a
        crop store holding the channels the chosen variants need (read, never modified).
    ground_truth, complexes : path-like, optional
        With ``data`` (at least one is required): organelle-level labels (OpenCell
        annotation CSV or ``protein_id,family[,complex]``) and a ``protein_id,complex``
        table; see :func:`run_demo`. Only the levels they provide are scored.
    preprocess_options : mapping, optional
        With a manifest or folder ``data``: options of
        :func:`cyto.preprocess.preprocess_dataset` (not ``channels``).
    preset : str or DemoPreset, default "small"
        Atlas, model preset and training budget (see :data:`DEMO_PRESETS`; with ``data``
        only the model and training budget apply).
    variants : sequence of str, optional
        Names from :data:`ABLATION_VARIANTS` (default: all seven).
    seeds : sequence of int, default (0, 1, 2)
        Training seeds per variant (model initialisation, batch order and the split's
        tie-breaks).
    umap_seeds : sequence of int, default (0, 1, 2)
        UMAP seeds per trained model.
    device : str, default "auto"
        Training device.
    progress : bool, default True
        Progress bars and messages.
    echo : callable, optional
        Receives one line per finished model (default: print to stderr).

    Returns
    -------
    result : AblationResult

    Raises
    ------
    FileNotFoundError
        If ``data``, ``ground_truth`` or ``complexes`` does not exist.
    ValueError
        If a variant or the preset is unknown, ``seeds``/``umap_seeds`` is empty, ``data``
        comes without ground truth, or a crop store lacks a channel a variant needs.
    """
    preset = _resolve_preset(preset)
    names = list(ABLATION_VARIANTS) if variants is None else [str(v) for v in variants]
    unknown = [v for v in names if v not in ABLATION_VARIANTS]
    if unknown:
        raise ValueError(f"`variants` must be names from {list(ABLATION_VARIANTS)}, got {unknown}")
    if len(seeds) == 0 or len(umap_seeds) == 0:
        raise ValueError("`seeds` and `umap_seeds` must each hold at least one seed")
    inputs = _demo_inputs(data, ground_truth, complexes, preprocess_options)
    if inputs["data"] is not None and inputs["ground_truth"] is None and not inputs["complexes"]:
        raise ValueError(
            "`ground_truth` or `complexes` is needed with `data`: the ablation compares "
            "clustering scores against known localizations"
        )
    if "channels" in inputs["options"]:
        raise ValueError("`preprocess_options` must not set `channels`: each variant picks its own")
    echo = echo or _print_stderr
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study = _ablation_inputs(out, inputs, preset, progress)
    study["store"] = _ablation_store(out, study, inputs, names, progress)
    levels = _labelled_levels(study["store"], study["gt"])
    scores_path = out / "scores.json"
    done: dict[str, dict[str, dict[str, list[float]]]] = (
        json.loads(scores_path.read_text()) if scores_path.exists() else {}
    )
    for name in names:
        var = ABLATION_VARIANTS[name]
        store = _derive_store(
            study["store"], out / f"crops_{'_'.join(var.channels)}.h5", var.channels
        )
        for seed in seeds:
            key, run = f"seed{seed}", out / "runs" / _slug(name) / f"seed{seed}"
            if key in done.get(name, {}):
                if "knn_cosine" not in done[name][key]:  # scored before kNN was added
                    X, proteins = _read_encodings(run / "embeddings_test.h5")
                    fam = _levels(study["gt"], proteins)["organelle"]
                    done[name][key].update(_ablation_knn(run, store, X, fam, study["gt"], device))
                    _atomic_json(scores_path, done)
                continue
            _train_and_embed(run, store, preset, var, seed=seed, device=device, progress=progress)
            per = _score_model(run, store, study, levels, umap_seeds, device)
            done.setdefault(name, {})[key] = per
            _atomic_json(scores_path, done)
            echo(
                f"[ablate] {name} seed {seed}: Γ "
                + ", ".join(f"{lvl} {np.mean(per[lvl]):.2f}" for lvl in levels)
                + f"; kNN family accuracy {per['knn_cosine']:.3f} (cosine)"
            )
    table, knn, files = _write_ablation_tables(out, done, names, seeds, levels, preset, study)
    echo(table.to_markdown())
    echo(knn.to_markdown())
    return AblationResult(out_dir=out, table=table, knn=knn, files=files)


def _print_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _ablation_inputs(
    out: Path, inputs: Mapping[str, Any], preset: DemoPreset, progress: bool
) -> dict[str, Any]:
    """What the study runs on: source, preprocessing options, ground truth, exclusions."""
    if inputs["data"] is not None:
        return {
            "source": None if _is_crop_store(inputs["data"]) else inputs["data"],
            "options": inputs["options"],
            "gt": _ground_truth_table(inputs["ground_truth"], inputs["complexes"]),
            "exclude": {},
            "origin": f"data {inputs['data'].name}",
        }
    from cyto.data import SyntheticAtlasConfig, generate_atlas

    atlas = out / "atlas"
    if not (atlas / "synth.json").exists() or not (atlas / "manifest.csv").exists():
        cfg = SyntheticAtlasConfig(seed=0, **dict(preset.atlas))
        generate_atlas(atlas, cfg, n_jobs=os.cpu_count() or 1, progress=progress)
    return {
        "source": atlas / "manifest.csv",
        "options": dict(json.loads((atlas / "synth.json").read_text())["preprocess_hint"]),
        "gt": _family_table(atlas),
        "exclude": {"organelle": ["mixed"]},
        "origin": "synthetic atlas seed 0",
    }


def _ablation_store(
    out: Path,
    study: Mapping[str, Any],
    inputs: Mapping[str, Any],
    names: Sequence[str],
    progress: bool,
) -> Path:
    """The store with every channel the variants need (preprocessed, or the user's)."""
    from cyto.data import CropStore

    if study["source"] is not None:
        from cyto.preprocess import preprocess_dataset

        target = out / "crops_all.h5"
        # resumable: fields already in the store are skipped, failed ones are retried
        channels = ("protein", "distance", "nucleus")
        _check_preprocessed(
            preprocess_dataset(
                study["source"], target, channels=channels, progress=progress, **study["options"]
            )
        )
        return target
    store = inputs["data"]
    with CropStore(store) as cs:
        have = set(cs.channels)
    lacking = {
        n: [c for c in ABLATION_VARIANTS[n].channels if c not in have]
        for n in names
        if not set(ABLATION_VARIANTS[n].channels) <= have
    }
    if lacking:
        raise ValueError(
            f"`data` {str(store)!r} has channels {sorted(have)}; "
            + "; ".join(f"{n!r} needs {c}" for n, c in lacking.items())
            + " (preprocess with --channels protein,distance,nucleus, or leave those "
            "variants out)"
        )
    return store


def _labelled_levels(store: Path, gt: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The ground-truth levels that label at least one protein of the store."""
    from cyto.data import CropStore

    with CropStore(store) as cs:
        present = set(cs.protein_ids)
    levels = [
        lvl
        for lvl, col in (("organelle", "family"), ("complex", "complex"))
        if any(r.get(col) for p, r in gt.items() if p in present)
    ]
    if not levels:
        raise ValueError(
            f"none of the {len(present)} proteins in the crops has a label in the ground "
            "truth: check that its protein names match the `protein_id`s of `data`"
        )
    return levels


def _train_and_embed(
    run: Path,
    store: Path,
    preset: DemoPreset,
    var: AblationVariant,
    *,
    seed: int,
    device: str,
    progress: bool,
) -> None:
    """Train one variant (resuming a killed run) and embed its test split."""
    from cyto.nn import embed, train

    if not RunDir(run).finished:
        cfg = preset.train_config(
            seed=seed,
            device=device,
            progress=progress,
            classify=var.overrides.get("classify", True),
        )
        overrides = {**dict(preset.model_overrides), **dict(var.overrides)} or None
        train(store, run, config=cfg, model_overrides=overrides, resume=RunDir(run).resumable)
    emb = run / "embeddings_test.h5"
    if not emb.exists():
        # an ablation compares variants: a collapsed one is a result, not an error
        embed(
            run, store, emb, split="test", device=device, progress=progress, allow_degenerate=True
        )


def _score_model(
    run: Path,
    store: Path,
    study: Mapping[str, Any],
    levels: Sequence[str],
    umap_seeds: Sequence[int],
    device: str,
) -> dict[str, Any]:
    """Γ per level and UMAP seed, and the k-NN family accuracy, of one trained model."""
    from cyto.analysis import clustering_score, umap_embed

    X, proteins = _read_encodings(run / "embeddings_test.h5")
    labels = _levels(study["gt"], proteins)
    per: dict[str, Any] = {lvl: [] for lvl in levels}
    for useed in umap_seeds:
        Y = umap_embed(X, random_state=int(useed))
        for lvl in levels:
            per[lvl].append(clustering_score(Y, labels[lvl], exclude=study["exclude"].get(lvl)))
    per.update(_ablation_knn(run, store, X, labels["organelle"], study["gt"], device))
    return per


def _write_ablation_tables(
    out: Path,
    done: Mapping[str, Mapping[str, Mapping[str, Any]]],
    names: Sequence[str],
    seeds: Sequence[int],
    levels: Sequence[str],
    preset: DemoPreset,
    study: Mapping[str, Any],
) -> tuple[Any, Any, dict[str, Path]]:
    """Γ and k-NN tables over the requested seeds: ablation.md/.csv/.json/.png."""
    from cyto.analysis import ScoreTable, plot_scores, save_figure

    # only the requested seeds: a table over a subset of an earlier, larger run says so
    keys = [f"seed{seed}" for seed in seeds]
    table = ScoreTable.from_scores(
        {
            name: {level: [v for key in keys for v in done[name][key][level]] for level in levels}
            for name in names
        }
    )
    fields = (("kNN cosine", "knn_cosine"), ("kNN Euclidean", "knn_euclidean"))
    knn = ScoreTable.from_scores(
        {
            name: {label: [float(done[name][key][f]) for key in keys] for label, f in fields}
            for name in names
        }
    )
    files = {f"ablation.{ext}": out / f"ablation.{ext}" for ext in ("md", "csv", "json", "png")}
    # UMAPs per model as stored (a resumed study keeps the UMAP seeds it was scored with)
    n_umaps = sorted({len(done[name][key][levels[0]]) for name in names for key in keys})
    n_models = f"{len(seeds)} trained model{'s' if len(seeds) > 1 else ''}"
    header = (
        f"Clustering score Γ (mean ± s.e.m. over {n_models} × "
        f"{'/'.join(map(str, n_umaps))} UMAP{'s' if n_umaps[-1] > 1 else ''}), "
        f"preset {preset.name!r}, {study['origin']}.\n\n"
    )
    knn_header = (
        f"\nk-nearest-neighbour family accuracy (k = 15, fit on the training split's global "
        f"encodings, scored on the test split; mean ± s.e.m. over {n_models}).\n\n"
    )
    _atomic_text(
        files["ablation.md"],
        header + table.to_markdown() + "\n" + knn_header + knn.to_markdown() + "\n",
    )
    records = table.to_records() + knn.to_records()
    _atomic_json(files["ablation.json"], records)
    csv_lines = ["variant,level,mean,sem,n"] + [
        f'"{r["variant"]}",{r["level"]},{r["mean"]:.6g},{r["sem"]:.6g},{r["n"]}' for r in records
    ]
    _atomic_text(files["ablation.csv"], "\n".join(csv_lines) + "\n")
    save_figure(plot_scores(table, title="Ablation: clustering score"), files["ablation.png"])
    return table, knn, files
