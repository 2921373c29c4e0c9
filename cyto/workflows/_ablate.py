"""`cyto ablate`: the paper's ablation study (Supp. Table 1, Fig. 6) as configuration switches."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cyto._atomic import write_text_atomic
from cyto.analysis import GroundTruth, evaluate
from cyto.data import Embeddings, RunDir, write_marker
from cyto.workflows._inputs import (
    DemoPreset,
    _atomic_json,
    _check_job,
    _check_preprocessed,
    _demo_inputs,
    _is_crop_store,
    _print_stderr,
    _resolve_preset,
)


# --------------------------------------------------------------------------- ablation
@dataclass(frozen=True)
class AblationVariant:
    """One row of the ablation table: an input channel set and model switches.

    Parameters
    ----------
    channels : tuple of str
        Crop channels fed to the model (from ``("protein", "distance", "nucleus")``).
    overrides : dict
        Model config fields switched for this variant (:class:`cyto.nn.CytoselfConfig`;
        ``{"model": "paired_inpainting"}`` trains Lu et al.'s model instead).
    dataset : str, default "global"
        The embeddings dataset scored (e.g. ``"layer_conv3"`` of paired inpainting).
    run : str, optional
        Name of the run folder; variants with the same ``run`` share one trained model
        (one row per feature layer of the same model).
    """

    channels: tuple[str, ...] = ("protein", "distance")
    overrides: Mapping[str, Any] = field(default_factory=dict)
    dataset: str = "global"
    run: str | None = None


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


#: Lu et al. (2019)'s paired cell inpainting, one row per feature layer of one model
#: (``cyto ablate --with-baselines``; the paper's Supp. Table 2). It sees the nucleus
#: image, as in the original (the store's nucleus channel, not the distance map).
BASELINE_VARIANTS: dict[str, AblationVariant] = {
    f"Lu et al. 2019 {layer}": AblationVariant(
        channels=("protein", "nucleus"),
        overrides={"model": "paired_inpainting"},
        dataset=f"layer_{layer}",
        run="lu-et-al-2019",
    )
    for layer in ("conv3", "conv4", "conv5")
}

#: Every variant ``cyto ablate`` can train.
ALL_VARIANTS: dict[str, AblationVariant] = {**ABLATION_VARIANTS, **BASELINE_VARIANTS}


def _run_folder(out: Path, name: str, seed: int) -> Path:
    """The run of one variant and seed (shared by variants naming the same ``run``)."""
    var = ALL_VARIANTS[name]
    return out / "runs" / (var.run or _slug(name)) / f"seed{seed}"


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


def _read_encodings(path: Path, dataset: str = "global") -> tuple[np.ndarray, np.ndarray]:
    with Embeddings(path) as emb:
        X, proteins = emb.read(dataset), emb.protein_ids
    return X.reshape(len(X), -1).astype(np.float32), proteins


def _train_encodings(
    run: Path, store: Path, device: str, dataset: str = "global"
) -> tuple[np.ndarray, np.ndarray]:
    """Global encodings of the training split of one trained model (the k-NN reference).

    They are written to a temporary file next to the run and removed once read.
    """
    from cyto.nn import embed

    tmp = run / "embeddings_train.tmp.h5"
    try:
        # an ablation compares variants: a collapsed one is a result, not an error
        embed(run, store, tmp, split="train", device=device, progress=False, allow_degenerate=True)
        return _read_encodings(tmp, dataset)
    finally:
        tmp.unlink(missing_ok=True)


def _knn_fields(knn: Mapping[str, float]) -> dict[str, float]:
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
    umap: str = "aligned",
    with_baselines: bool = False,
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
        Names from :data:`ABLATION_VARIANTS` (default: all seven) or
        :data:`BASELINE_VARIANTS`.
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
    umap : {"aligned", "independent"}, default "aligned"
        ``"aligned"``: for each training seed, the variants' test encodings are
        embedded together with AlignedUMAP (as the paper did, Supp. Figs. 11–12), so
        their maps — and Γ — are comparable panel by panel (one aligned map per training
        seed: umap-learn's AlignedUMAP does not vary with its random state, so UMAP
        seeds apply to the independent mode only);
        ``"independent"``: one UMAP per model. Scores made with another mode (or another
        set of aligned variants) are redone, without retraining.
    with_baselines : bool, default False
        Also train Lu et al. (2019)'s paired cell inpainting on the same store, split,
        preset and seeds, and add one row per feature layer (:data:`BASELINE_VARIANTS`).

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
    # every variant trains the same steps: a time budget would give a slower variant
    # (or a busier moment) fewer, and the comparison would measure the machine
    preset = dataclasses.replace(_resolve_preset(preset), train_budget_s=0.0)
    names = list(ABLATION_VARIANTS) if variants is None else [str(v) for v in variants]
    if with_baselines:
        names += [n for n in BASELINE_VARIANTS if n not in names]
    unknown = [v for v in names if v not in ALL_VARIANTS]
    if unknown:
        raise ValueError(f"`variants` must be names from {list(ALL_VARIANTS)}, got {unknown}")
    if len(seeds) == 0 or len(umap_seeds) == 0:
        raise ValueError("`seeds` and `umap_seeds` must each hold at least one seed")
    if umap not in ("aligned", "independent"):
        raise ValueError(f"`umap` must be 'aligned' or 'independent', got {umap!r}")
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
    if not _check_job(out, "ablation", inputs, device):
        out.mkdir(parents=True, exist_ok=True)
        write_marker(out, "ablation", [])  # resumable from here on: recognised as cyto's
    study = _ablation_inputs(out, inputs, preset, progress)
    study["store"] = _ablation_store(out, study, inputs, names, progress)
    levels = _labelled_levels(study["store"], study["gt"])
    scores_path = out / "scores.json"
    done: dict[str, dict[str, dict[str, list[float]]]] = (
        json.loads(scores_path.read_text()) if scores_path.exists() else {}
    )
    stores = {}
    for name in names:
        var = ALL_VARIANTS[name]
        stores[name] = _derive_store(
            study["store"], out / f"crops_{'_'.join(var.channels)}.h5", var.channels
        )
        for seed in seeds:
            if f"seed{seed}" not in done.get(name, {}):
                run = _run_folder(out, name, seed)
                _train_and_embed(
                    run, stores[name], preset, var, seed=seed, device=device, progress=progress
                )
    scoring = {"study": study, "stores": stores, "device": device, "umap": umap}
    study["umap"] = umap
    for seed in seeds:
        for name, per in _score_seed(out, names, seed, umap_seeds, done, scoring).items():
            _atomic_json(scores_path, done)
            echo(
                f"[ablate] {name} seed {seed}: Γ "
                + ", ".join(f"{lvl} {np.mean(per[lvl]):.2f}" for lvl in levels)
                + f"; kNN family accuracy {per['knn_cosine']:.3f} (cosine)"
                + f"; family mAP {per['family_map']:.3f}"
            )
    table, knn, files = _write_ablation_tables(out, done, names, seeds, levels, preset, study)
    echo(table.to_markdown())
    echo(knn.to_markdown())
    return AblationResult(out_dir=out, table=table, knn=knn, files=files)


def _ablation_inputs(
    out: Path, inputs: Mapping[str, Any], preset: DemoPreset, progress: bool
) -> dict[str, Any]:
    """What the study runs on: source, preprocessing options and ground truth."""
    if inputs["data"] is not None:
        return {
            "source": None if _is_crop_store(inputs["data"]) else inputs["data"],
            "options": inputs["options"],
            "gt": GroundTruth.read(inputs["ground_truth"], inputs["complexes"]),
            "origin": f"data {inputs['data'].name}",
        }
    from cyto.data import SyntheticAtlasConfig, generate_atlas

    atlas = out / "atlas"
    if not (atlas / "synth.json").exists() or not (atlas / "manifest.csv").exists():
        cfg = SyntheticAtlasConfig(seed=0, **dict(preset.atlas))
        generate_atlas(
            atlas, cfg, n_jobs=os.cpu_count() or 1, progress=progress, compression="zlib"
        )
    return {
        "source": atlas / "manifest.csv",
        "options": dict(json.loads((atlas / "synth.json").read_text())["preprocess_hint"]),
        # as OpenCell's annotations: a 'mixed' protein (two localizations) has no
        # organelle label (the paper's single-localization rule)
        "gt": GroundTruth.read(atlas / "annotations.csv", atlas / "complexes.csv"),
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
        n: [c for c in ALL_VARIANTS[n].channels if c not in have]
        for n in names
        if not set(ALL_VARIANTS[n].channels) <= have
    }
    if lacking:
        raise ValueError(
            f"`data` {str(store)!r} has channels {sorted(have)}; "
            + "; ".join(f"{n!r} needs {c}" for n, c in lacking.items())
            + " (preprocess with --channels protein,distance,nucleus, or leave those "
            "variants out)"
        )
    return store


def _labelled_levels(store: Path, gt: GroundTruth) -> list[str]:
    """The ground-truth levels that label at least one protein of the store."""
    from cyto.data import CropStore

    with CropStore(store) as cs:
        present = set(cs.protein_ids)
    levels = [lv for lv, m in gt.levels.items() if present & set(m)]
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
        # the preset's model switches belong to cytoself; another model takes its own
        own = dict(preset.model_overrides) if "model" not in var.overrides else {}
        overrides = {**own, **dict(var.overrides)} or None
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
    umap_seeds: Sequence[int],
    device: str,
    *,
    knn: bool = True,
    dataset: str = "global",
) -> dict[str, Any]:
    """Γ per level and UMAP seed, the k-NN family accuracy and the family and protein mAP
    (:func:`cyto.analysis.retrieval_scores`) of one trained model."""
    X, proteins = _read_encodings(run / "embeddings_test.h5", dataset)
    reference = _train_encodings(run, store, device, dataset) if knn else None
    ev = evaluate(X, proteins, study["gt"], reference=reference, umap_seeds=umap_seeds)
    per: dict[str, Any] = {lv: s["values"] for lv, s in ev.scores.items()}
    maps = {
        f"{what}_map": ev.retrieval.get(what, {}).get("map", float("nan"))
        for what in ("family", "protein")
    }
    return {**per, **maps, **(_knn_fields(ev.knn) if knn else {})}


def _umap_tag(umap: str, names: Sequence[str]) -> str:
    """How Γ was measured: ``independent``, or ``aligned:<the variants aligned>``."""
    return "independent" if umap == "independent" else "aligned:" + "|".join(sorted(names))


def _score_seed(
    out: Path,
    names: Sequence[str],
    seed: int,
    umap_seeds: Sequence[int],
    done: dict[str, dict[str, dict[str, Any]]],
    scoring: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    """Score the models of one training seed that lack a score; the entries redone."""
    key, study, tag = f"seed{seed}", scoring["study"], _umap_tag(scoring["umap"], names)
    runs = {n: _run_folder(out, n, seed) for n in names}
    entry = {n: done.setdefault(n, {}).get(key) for n in names}
    stale = [n for n in names if entry[n] is None or entry[n].get("umap", "independent") != tag]
    gammas: dict[str, dict[str, list[float]]] = {}
    if stale and scoring["umap"] == "aligned" and len(names) > 1:
        gammas = _aligned_gammas(runs, study["gt"], umap_seeds)  # alignment couples them all
    redone = {}
    for n in names:
        e = dict(entry[n] or {})
        if n in gammas:
            e.update(gammas[n], umap=tag)
        independent = n in stale and n not in gammas  # its own UMAPs
        if independent or not {"knn_cosine", "family_map"} <= set(e):
            # one evaluation gives what is missing: Γ on its own UMAPs, k-NN, mAP
            seeds = umap_seeds if independent else ()
            knn = "knn_cosine" not in e
            e.update(
                _score_model(
                    runs[n],
                    scoring["stores"][n],
                    study,
                    seeds,
                    scoring["device"],
                    knn=knn,
                    dataset=ALL_VARIANTS[n].dataset,
                )
            )
            if independent:
                e["umap"] = tag
        if e != entry[n]:
            done[n][key] = redone[n] = e
    return redone


def _aligned_gammas(
    runs: Mapping[str, Path], gt: GroundTruth, umap_seeds: Sequence[int]
) -> dict[str, dict[str, list[float]]]:
    """Γ of every variant on one AlignedUMAP of their test encodings.

    Empty when the variants' test crops differ (then each is scored on its own UMAPs).
    """
    from cyto.analysis import aligned_umap, gamma_over_umaps

    data = {}
    for n, run in runs.items():
        with Embeddings(run / "embeddings_test.h5") as emb:
            X = emb.read(ALL_VARIANTS[n].dataset)
            data[n] = (X.reshape(len(X), -1).astype(np.float32), emb.protein_ids, emb.crop_index)
    first = next(iter(data.values()))[2]
    if any(not np.array_equal(d[2], first) for d in data.values()):
        return {}
    names = list(data)
    # umap-learn's AlignedUMAP gives the same maps whatever its random_state (measured:
    # identical embeddings for 0 and 1), so one aligned map per training seed is made
    maps = [aligned_umap([data[n][0] for n in names], random_state=int(umap_seeds[0]))]
    out = {}
    for i, n in enumerate(names):
        labels = gt.crop_labels(data[n][1], min_classes=2)
        out[n] = {
            lv: v["values"] for lv, v in gamma_over_umaps([m[i] for m in maps], labels).items()
        }
    return out


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
    fields = (
        ("kNN cosine", "knn_cosine"),
        ("kNN Euclidean", "knn_euclidean"),
        ("family mAP", "family_map"),
        ("protein mAP", "protein_map"),
    )
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
    aligned = study.get("umap") == "aligned" and len(names) > 1
    header = (
        f"Clustering score Γ (mean ± s.e.m. over {n_models} × "
        f"{'/'.join(map(str, n_umaps))} UMAP{'s' if n_umaps[-1] > 1 else ''}"
        f"{'; UMAPs aligned across the variants (AlignedUMAP)' if aligned else ''}), "
        f"preset {preset.name!r}, {study['origin']}.\n\n"
    )
    knn_header = (
        f"\nk-nearest-neighbour family accuracy (k = 15, fit on the training split's global "
        "encodings, scored on the test split) and retrieval mAP (cosine; family: per-protein "
        "mean profiles retrieving their family; protein: test crops retrieving their "
        f"protein); mean ± s.e.m. over {n_models}.\n\n"
    )
    write_text_atomic(
        files["ablation.md"],
        header + table.to_markdown() + "\n" + knn_header + knn.to_markdown() + "\n",
    )
    records = table.to_records() + knn.to_records()
    _atomic_json(files["ablation.json"], records)
    csv_lines = ["variant,level,mean,sem,n"] + [
        f'"{r["variant"]}",{r["level"]},{r["mean"]:.6g},{r["sem"]:.6g},{r["n"]}' for r in records
    ]
    write_text_atomic(files["ablation.csv"], "\n".join(csv_lines) + "\n")
    save_figure(plot_scores(table, title="Ablation: clustering score"), files["ablation.png"])
    return table, knn, files
