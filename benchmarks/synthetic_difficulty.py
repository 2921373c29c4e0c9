"""How hard is the synthetic atlas? Clustering scores of simple baselines on its crops.

Generates a synthetic atlas in memory (the default catalogue: 14 families, 28
complexes, 60 proteins), cuts the paper's 100×100 crops around every nucleus, and
computes the paper's clustering score Γ (Kobayashi et al. 2022, Methods) on 2-D UMAPs of
simple, model-free representations of the crops:

- ``pixels``: the normalized protein channel (mean-pooled to 50×50) → PCA (50) → UMAP;
- ``intensity``: per-crop intensity statistics of the protein channel (moments,
  percentiles, fraction of bright pixels) → standardize → UMAP;
- ``intensity+compartment``: the same plus nuclear/cytoplasmic statistics taken with
  the nucleus mask of the crop (a hand-made localization feature) → UMAP.

Scores are given at the organelle level (families; the ``mixed`` family is left out, as
the paper's organelle ground truth only holds proteins with one localization) and at
the complex level (all complexes), as mean ± sd over several UMAP seeds. A trained model
has to beat the complex-level numbers clearly; if a baseline already separates complexes
well, the atlas is too easy.

Crops come from ``cyto.preprocess.preprocess_fov`` when it exists (same settings as the
demo: max projection, ``synth.json``'s downsample, 100 px crops); otherwise from a small
local implementation of the paper's recipe (max projection, nuclei from
``cyto.preprocess.segment_nuclei`` or the true masks, crops centred on nuclei at least
50 px from the edges, protein channel min–max normalized per crop).

Usage::

    flock /tmp/cyto-bench.lock python benchmarks/synthetic_difficulty.py \
        [--fields 3] [--seeds 3] [--out benchmarks/results/synthetic_difficulty.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from _machine import machine_info
from scipy import ndimage as ndi

from cyto.data import SyntheticAtlasConfig, make_catalog, make_field

CROP = 100


def _local_crops(field, down: int, use_true_masks: bool):
    """Paper recipe: max projection, nuclei, 100×100 crops centred on nuclei."""
    proj = field.image.max(axis=1).astype(np.float32)  # (2, H, W)
    if down > 1:
        h, w = proj.shape[1] // down * down, proj.shape[2] // down * down
        proj = proj[:, :h, :w].reshape(2, h // down, down, w // down, down).mean((2, 4))
    if use_true_masks:
        nuclei = field.nuclei[::down, ::down]
    else:
        from cyto.preprocess import segment_nuclei

        nuclei = segment_nuclei(proj[0])
    n = int(nuclei.max())
    if n == 0:
        return []
    centres = ndi.center_of_mass(np.ones_like(nuclei), nuclei, np.arange(1, n + 1))
    half = CROP // 2
    size = nuclei.shape
    out = []
    for k, (cy, cx) in enumerate(centres, start=1):
        cy, cx = round(cy), round(cx)
        if cy < half or cx < half or cy + half > size[0] or cx + half > size[1]:
            continue
        sl = (slice(cy - half, cy + half), slice(cx - half, cx + half))
        prot = proj[1][sl]
        lo, hi = float(prot.min()), float(prot.max())
        prot = (prot - lo) / max(hi - lo, 1e-6)
        out.append((prot.astype(np.float32), nuclei[sl] == k, nuclei[sl] > 0))
    return out


def _crops_via_preprocess(field, hint):
    """Crops from cyto.preprocess.preprocess_fov with the atlas's preprocess_hint."""
    from cyto.preprocess import preprocess_fov

    res = preprocess_fov(field.image[1], field.image[0], **hint)
    crops = np.asarray(res.crops, dtype=np.float32)
    channels = list(res.channels)
    prot = crops[:, channels.index("protein")]
    dist = crops[:, channels.index("distance")]
    return [(p, d > 0, d > 0) for p, d in zip(prot, dist)]


def _features(crops):
    prot = np.stack([c[0] for c in crops])
    own = np.stack([c[1] for c in crops])
    anynuc = np.stack([c[2] for c in crops])
    n = len(crops)
    pooled = prot.reshape(n, CROP // 2, 2, CROP // 2, 2).mean((2, 4)).reshape(n, -1)
    flat = prot.reshape(n, -1)
    mean = flat.mean(1)
    std = flat.std(1)
    centred = flat - mean[:, None]
    skew = (centred**3).mean(1) / np.maximum(std, 1e-6) ** 3
    kurt = (centred**4).mean(1) / np.maximum(std, 1e-6) ** 4
    pct = np.percentile(flat, [1, 5, 25, 50, 75, 95, 99], axis=1).T
    bright = np.stack([(flat > t).mean(1) for t in (0.25, 0.5, 0.75)], 1)
    intensity = np.column_stack([mean, std, std / np.maximum(mean, 1e-6), skew, kurt, pct, bright])
    comp = []
    for p, o, a in zip(prot, own, anynuc):
        cyto = ~a
        mn = p[o].mean() if o.any() else 0.0
        mc = p[cyto].mean() if cyto.any() else 0.0
        comp.append(
            [
                mn,
                mc,
                mn / max(mc, 1e-3),
                p[o].std() if o.any() else 0.0,
                p[cyto].std() if cyto.any() else 0.0,
                np.percentile(p[cyto], 95) if cyto.any() else 0.0,
                np.percentile(p[o], 95) if o.any() else 0.0,
            ]
        )
    compartment = np.column_stack([intensity, np.array(comp)])
    return {"pixels": pooled, "intensity": intensity, "intensity+compartment": compartment}


def _standardize(x):
    x = np.asarray(x, np.float64)
    sd = x.std(0)
    return (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)


def _pca(x, k):
    x = x - x.mean(0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, :k] * s[:k]


def _score_fns():
    try:
        from cyto.analysis import clustering_score, umap_embed

        return clustering_score, lambda x, seed: umap_embed(x, random_state=seed, backend="umap")
    except ImportError:  # pragma: no cover - fallback while cyto.analysis is written
        import umap

        def score(x, labels, *, exclude=None):
            labels = np.asarray(labels, object)
            keep = labels != exclude if exclude is not None else np.ones(len(labels), bool)
            x, labels = x[keep], labels[keep]
            cents, sizes = [], []
            for c in np.unique(labels):
                pts = x[labels == c]
                med = np.median(pts, 0)
                cents.append(med)
                sizes.append(np.median(np.linalg.norm(pts - med, axis=1)))
            cents = np.array(cents)
            spread = np.median(np.linalg.norm(cents - np.median(cents, 0), axis=1))
            return float(spread / np.median(sizes))

        return score, lambda x, seed: umap.UMAP(random_state=seed).fit_transform(x)


def gallery(path: str, *, seed: int = 0) -> None:
    """One example crop per family and complex (protein grey, nuclear outline blue)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = SyntheticAtlasConfig(seed=seed)
    catalog = make_catalog(cfg)
    hint = cfg.preprocess_hint
    fams = [f for f in cfg.families]
    ncol = 7
    nrow = 2 * int(np.ceil(len(fams) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.0 * ncol, 2.15 * nrow))
    for i, fam in enumerate(fams):
        members = [p for p in catalog if p.family == fam]
        complexes = sorted({p.complex for p in members})[:2]
        for j, cx in enumerate(complexes):
            ax = axes[2 * (i // ncol) + j, i % ncol]
            prot = next(p for p in members if p.complex == cx)
            crops = []
            for k in range(cfg.fields_per_protein):
                f = make_field(prot, config=cfg, field_index=k)
                crops += _crops_via_preprocess_full(f, hint)
                if len(crops) >= 12:
                    break
            # a typical crop: median brightness of the crop's own cell
            order = np.argsort([c[0][40:60, 40:60].mean() for c in crops])
            p_img, dist = crops[order[len(order) // 2]]
            ax.imshow(p_img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.contour(dist, levels=[0.0], colors=["#4da3ff"], linewidths=0.6)
            ax.set_title(f"{fam}\n{cx}" if j == 0 else cx, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    for ax in axes.ravel():
        if not ax.images:
            ax.axis("off")
    fig.suptitle(
        "cyto synthetic atlas: one 100×100 crop per complex (two complexes per family; "
        "protein grey, nucleus outline blue)",
        fontsize=9,
    )
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _crops_via_preprocess_full(field, hint):
    from cyto.preprocess import preprocess_fov

    res = preprocess_fov(field.image[1], field.image[0], **hint)
    ch = list(res.channels)
    return [(c[ch.index("protein")], c[ch.index("distance")]) for c in np.asarray(res.crops)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="atlas seed")
    ap.add_argument("--fields", type=int, default=3, help="fields per protein")
    ap.add_argument("--seeds", type=int, default=3, help="UMAP seeds per baseline")
    ap.add_argument("--complex-spread", type=float, default=None)
    ap.add_argument("--true-masks", action="store_true", help="crop on the true nuclei")
    ap.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "synthetic_difficulty.json")
    )
    ap.add_argument("--gallery", default=None, help="only draw the family gallery PNG here")
    args = ap.parse_args(argv)
    if args.gallery:
        gallery(args.gallery, seed=args.seed)
        return 0

    kw = {} if args.complex_spread is None else {"complex_spread": args.complex_spread}
    cfg = SyntheticAtlasConfig(seed=args.seed, fields_per_protein=args.fields, **kw)
    catalog = make_catalog(cfg)
    hint = cfg.preprocess_hint
    try:
        from cyto import preprocess

        use_pre = hasattr(preprocess, "preprocess_fov") and not args.true_masks
        has_seg = hasattr(preprocess, "segment_nuclei")
    except ImportError:  # pragma: no cover
        use_pre, has_seg = False, False
    cropper = (
        "cyto.preprocess.preprocess_fov"
        if use_pre
        else (
            "local recipe, segment_nuclei"
            if has_seg and not args.true_masks
            else "local recipe, true masks"
        )
    )
    t0 = time.perf_counter()
    crops, fam, cpx, prot_id = [], [], [], []
    for p in catalog:
        for k in range(cfg.fields_per_protein):
            f = make_field(p, config=cfg, field_index=k)
            cs = (
                _crops_via_preprocess(f, hint)
                if use_pre
                else _local_crops(f, hint["downsample_factor"], args.true_masks or not has_seg)
            )
            crops += cs
            fam += [p.family] * len(cs)
            cpx += [p.complex] * len(cs)
            prot_id += [p.protein_id] * len(cs)
    t_crops = time.perf_counter() - t0
    print(
        f"{len(crops)} crops from {len(catalog) * cfg.fields_per_protein} fields in {t_crops:.0f} s"
    )
    fam = np.array(fam, object)
    cpx = np.array(cpx, object)
    feats = _features(crops)
    score, embed = _score_fns()
    # how much of the per-crop statistics do the labels explain? (η², median over stats)
    stats = _standardize(feats["intensity+compartment"])

    def eta2(labels):
        total = ((stats - stats.mean(0)) ** 2).sum(0)
        between = np.zeros(stats.shape[1])
        for c in set(labels):
            m = labels == c
            between += m.sum() * (stats[m].mean(0) - stats.mean(0)) ** 2
        return float(np.median(between / np.maximum(total, 1e-12)))

    variance = {
        "family": eta2(fam),
        "complex": eta2(cpx),
        "protein": eta2(np.array(prot_id, object)),
    }
    within = []
    for f in sorted(set(fam)):
        m = fam == f
        sub = stats[m]
        tot = ((sub - sub.mean(0)) ** 2).sum(0)
        btw = np.zeros(sub.shape[1])
        for c in set(cpx[m]):
            mm = cpx[m] == c
            btw += mm.sum() * (sub[mm].mean(0) - sub.mean(0)) ** 2
        within.append(np.median(btw / np.maximum(tot, 1e-12)))
    variance["complex_within_family"] = float(np.median(within))
    print("variance of per-crop statistics explained (median η²):", variance)
    fam_of_protein = {p.protein_id: p.family for p in catalog}
    prot_id = np.array(prot_id, object)
    rng = np.random.default_rng(12345)
    null_labels = []
    for _ in range(3):  # complexes shuffled among the proteins of each family
        mapping = {}
        for f in set(fam_of_protein.values()):
            pids = sorted(p.protein_id for p in catalog if p.family == f)
            cxs = [next(q.complex for q in catalog if q.protein_id == pid) for pid in pids]
            mapping.update(zip(pids, rng.permutation(cxs)))
        null_labels.append(np.array([mapping[p] for p in prot_id], object))
    families = sorted(set(fam))
    results = {}
    for name, x in feats.items():
        x = _standardize(x)
        if name == "pixels":
            x = _pca(x, 50)
        rec = {"organelle": [], "complex": [], "complex_null": [], "within_family": []}
        for s in range(args.seeds):
            t1 = time.perf_counter()
            emb = np.asarray(embed(x.astype(np.float32), s))
            rec["organelle"].append(score(emb, np.where(fam == "mixed", None, fam)))
            rec["complex"].append(score(emb, cpx))
            rec["complex_null"].append(float(np.mean([score(emb, lab) for lab in null_labels])))
            within = [score(emb[fam == f], cpx[fam == f]) for f in families]
            rec["within_family"].append(float(np.median(within)))
            print(
                f"  {name:22s} seed {s}: organelle {rec['organelle'][-1]:.2f} "
                f"complex {rec['complex'][-1]:.2f} (null {rec['complex_null'][-1]:.2f}) "
                f"within-family {rec['within_family'][-1]:.2f} "
                f"({time.perf_counter() - t1:.0f} s)"
            )
        results[name] = {
            **{f"{k}_mean": float(np.mean(v)) for k, v in rec.items()},
            **{f"{k}_sd": float(np.std(v)) for k, v in rec.items()},
            **rec,
        }

    meta = {
        "what": "clustering score (paper's Γ) of model-free baselines on synthetic crops",
        "atlas": cfg.to_dict(),
        "n_crops": len(crops),
        "n_proteins": len(catalog),
        "n_families_scored": len({f for f in fam if f != "mixed"}),
        "n_complexes": len(set(cpx)),
        "cropper": cropper,
        "umap_seeds": args.seeds,
        "results": results,
        "variance_explained_eta2": variance,
        "machine": machine_info(note="2-core machine possibly shared with other jobs"),
        "seconds_generating_and_cropping": round(t_crops, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(meta, indent=1))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
