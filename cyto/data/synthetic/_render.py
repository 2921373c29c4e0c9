"""Rendering of one synthetic field: Hoechst, protein patterns, optics and camera.

The in-focus 2-D images are built from diffuse concentration maps (per-cell expression
times a spatial profile) and point deposits (puncta, tubules, filaments, rims) blurred
with a pattern-specific width. The z-stack blurs and dims each cell according to its
distance from its own focal plane (per-pixel interpolation in a small Gaussian pyramid),
then a Poisson–Gaussian camera model adds shot noise, read noise and an offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from cyto.data.synthetic._cells import Cells
from cyto.data.synthetic._families import FAMILIES

__all__ = ["FieldPhysics", "render_field"]

_TRUNCATE = 3.0


@dataclass(frozen=True)
class FieldPhysics:
    """Acquisition and cell-population settings shared by all fields of an atlas."""

    z_planes: int = 8
    expression_sigma: float = 0.5
    param_jitter: float = 0.12
    out_of_focus_fraction: float = 0.08
    background: float = 250.0
    hoechst_level: tuple[float, float] = (1500.0, 4000.0)


def _blur(img, sigma):
    if sigma <= 0:
        return img
    return ndi.gaussian_filter(img, sigma, mode="nearest", truncate=_TRUNCATE)


def _noise(rng, size, sigma):
    """Smooth zero-mean, unit-std random texture."""
    g = _blur(rng.standard_normal((size, size), dtype=np.float32), sigma)
    return g / max(float(g.std()), 1e-6)


def _splat(size, y, x, w):
    """Bilinear deposit of weights ``w`` at sub-pixel points (y, x)."""
    out = np.zeros(size * size)
    if y.size == 0:
        return out.reshape(size, size)
    y0 = np.floor(y)
    x0 = np.floor(x)
    fy = y - y0
    fx = x - x0
    y0 = y0.astype(np.intp)
    x0 = x0.astype(np.intp)
    for dy, dx, ww in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        yy = y0 + dy
        xx = x0 + dx
        ok = (yy >= 0) & (yy < size) & (xx >= 0) & (xx < size)
        out += np.bincount(yy[ok] * size + xx[ok], weights=(w * ww)[ok], minlength=size * size)
    return out.reshape(size, size)


class _Lazy:
    """Shared maps computed on first use (only the ones a pattern needs)."""

    def __init__(self, **makers):
        self._makers = makers
        self._values = {}

    def __getitem__(self, key):
        if key not in self._values:
            self._values[key] = self._makers[key]()
        return self._values[key]


class _Ctx:
    """Geometry and shared maps of one field, with sampling helpers."""

    def __init__(self, rng, cells: Cells, scale: float):
        self.rng = rng
        self.cells = cells
        self.s = scale
        self.size = cells.labels.shape[0]
        self.labels = cells.labels
        self.n = cells.n
        self.inside = cells.labels > 0
        self.nuc = cells.u < 1.0
        self.cyto = self.inside & ~self.nuc
        u = np.where(self.inside, cells.u, 1e3)
        v = cells.v
        # normalized position in the cytoplasm: 0 at the nuclear rim, 1 at the cell edge
        with np.errstate(divide="ignore", invalid="ignore"):
            t = v * (u - 1.0) / np.maximum(u - v, 1e-6)
        self.t = np.where(self.cyto, np.clip(t, 0.0, 1.0), 0.0).astype(np.float32)
        self.u = np.where(self.inside, cells.u, 1e3).astype(np.float32)
        self.profile = np.where(
            self.nuc, np.clip(1.0 - np.minimum(self.u, 1.0) ** 4, 0.0, 1.0) ** 0.35, 0.0
        ).astype(np.float32)
        self.r0_px = np.concatenate([[1.0], cells.r0])[self.labels].astype(np.float32)
        self.area = np.maximum(cells.area, 1.0)

    def per_pixel(self, values):
        return np.concatenate([[0.0], values])[self.labels].astype(np.float32)

    def rim(self, thickness):
        d = (self.u - 1.0) * self.r0_px / (thickness * self.s)
        return np.where(self.inside, np.exp(-(d**2)), 0.0).astype(np.float32)

    def _keep(self, ci, y, x, want_nucleus):
        iy = np.rint(y).astype(np.intp)
        ix = np.rint(x).astype(np.intp)
        ok = (iy >= 0) & (iy < self.size) & (ix >= 0) & (ix < self.size)
        ok[ok] = self.labels[iy[ok], ix[ok]] == ci[ok] + 1
        if want_nucleus is not None:
            ok[ok] = self.nuc[iy[ok], ix[ok]] == want_nucleus
        return ok

    def sample_cyto(self, counts, bias):
        """Points in the cytoplasm of each cell; ``bias`` in [0, 1] pulls them inwards."""
        c = self.cells
        ci = np.repeat(np.arange(self.n), counts)
        theta = self.rng.uniform(0, 2 * np.pi, ci.size)
        t = self.rng.random(ci.size) ** (1.0 + 3.0 * bias)
        rn = c.nuc_radius(ci, theta)
        rc = c.cell_radius(ci, theta)
        rho = rn + t * np.maximum(rc - rn, 0.0)
        y = c.cy[ci] + rho * np.sin(theta)
        x = c.cx[ci] + rho * np.cos(theta)
        ok = self._keep(ci, y, x, False)
        return ci[ok], y[ok], x[ok]

    def sample_nucleus(self, counts, umax=0.9):
        c = self.cells
        ci = np.repeat(np.arange(self.n), counts)
        theta = self.rng.uniform(0, 2 * np.pi, ci.size)
        rho = umax * np.sqrt(self.rng.random(ci.size)) * c.nuc_radius(ci, theta)
        y = c.cy[ci] + rho * np.sin(theta)
        x = c.cx[ci] + rho * np.cos(theta)
        ok = self._keep(ci, y, x, True)
        return ci[ok], y[ok], x[ok]

    def counts(self, mean, active, jitter=0.3):
        lam = mean * np.exp(self.rng.normal(0.0, jitter, self.n))
        return np.where(active, self.rng.poisson(lam), 0)

    def weights(self, ci, total, spread=0.0):
        """Per-point weights so that cell i's points sum to ``total[i]``."""
        w = np.exp(self.rng.normal(0.0, spread, ci.size)) if spread > 0 else np.ones(ci.size)
        norm = np.bincount(ci, weights=w, minlength=self.n)
        return w * total[ci] / np.maximum(norm[ci], 1e-12)


# --- nuclear structures shared by the Hoechst and protein channels -----------------


def _nucleoli(ctx: _Ctx, rng):
    """Per-cell nucleoli (cell, y, x, radius) for interphase cells."""
    c = ctx.cells
    k = np.where(c.mitotic, 0, 1 + rng.binomial(3, 0.4, ctx.n))
    ci = np.repeat(np.arange(ctx.n), k)
    theta = rng.uniform(0, 2 * np.pi, ci.size)
    rho = rng.uniform(0.0, 0.55, ci.size) * c.nuc_radius(ci, theta)
    y = c.cy[ci] + rho * np.sin(theta)
    x = c.cx[ci] + rho * np.cos(theta)
    r = c.r0[ci] * rng.uniform(0.15, 0.27, ci.size)
    return ci, y, x, r


def _disk_map(ctx: _Ctx, ci, y, x, r, *, rim=0.0):
    """Soft disks (value 1 inside, 1 px soft edge), optionally brighter at the rim."""
    out = np.zeros((ctx.size, ctx.size), np.float32)
    for j in range(ci.size):
        rr = r[j] + 1.5
        y0, y1 = max(int(y[j] - rr), 0), min(int(y[j] + rr) + 2, ctx.size)
        x0, x1 = max(int(x[j] - rr), 0), min(int(x[j] + rr) + 2, ctx.size)
        if y0 >= y1 or x0 >= x1:
            continue
        d = np.hypot(np.arange(y0, y1)[:, None] - y[j], np.arange(x0, x1)[None, :] - x[j])
        val = np.clip(r[j] - d + 0.5, 0.0, 1.0)
        if rim:
            val = val * ((1.0 - rim) + rim * 1.8 * np.minimum(d / r[j], 1.0) ** 2)
        own = ctx.labels[y0:y1, x0:x1] == ci[j] + 1
        box = out[y0:y1, x0:x1]
        np.maximum(box, np.where(own, val, 0.0), out=box)
    return out * ctx.nuc


# --- protein patterns --------------------------------------------------------------
# Each returns (diffuse map or None, [(sigma_px, y, x, w), ...]); expression per cell is
# ctx.e (zero for cells the pattern does not apply to).


def _p_nucleoplasm(ctx, p, sh):
    tex = _noise(ctx.rng, ctx.size, p["texture_scale"] * ctx.s)
    e = ctx.per_pixel(ctx.e)
    nuc = ctx.profile * np.clip(1.0 + p["texture"] * tex, 0.1, None)
    nuc = nuc * (1.0 - p["nucleolar_exclusion"] * sh["nl"])
    return e * (nuc + p["cyto_frac"] * ctx.cyto), []


def _p_nucleolus(ctx, p, sh):
    ci, y, x, r = sh["nucleoli"]
    nl = _disk_map(ctx, ci, y, x, r * p["size"], rim=p["rim"])
    e = ctx.per_pixel(ctx.e)
    conc = 6.0
    diffuse = e * (ctx.profile * p["nucleoplasm_frac"] + conc * (1 - p["puncta_frac"]) * nl)
    # fibrillar-centre-like puncta inside each nucleolus
    k = 3
    pj = np.repeat(np.arange(ci.size), k)
    ang = ctx.rng.uniform(0, 2 * np.pi, pj.size)
    rad = 0.6 * r[pj] * p["size"] * np.sqrt(ctx.rng.random(pj.size))
    py = y[pj] + rad * np.sin(ang)
    px = x[pj] + rad * np.cos(ang)
    total = conc * p["puncta_frac"] * np.pi * (r * p["size"]) ** 2 * ctx.e[ci]
    w = np.repeat(total / k, k)
    return diffuse, [(0.7 * ctx.s, py, px, w)]


def _p_nuclear_membrane(ctx, p, sh):
    e = ctx.per_pixel(ctx.e)
    rim = ctx.rim(p["thickness"])
    pores = np.clip(1.0 + p["pore_contrast"] * sh["speckle"], 0.0, None)
    er = ctx.cyto * np.exp(-ctx.t / 0.3)
    return e * (4.0 * rim * pores + p["nucleoplasm_frac"] * ctx.profile + p["er_frac"] * er), []


def _p_chromatin(ctx, p, sh):
    e = ctx.per_pixel(ctx.e)
    hm = sh["hoechst_mod"]
    mod = np.clip(1.0 + p["contrast"] * (hm - 1.0), 0.05, None)
    nuc = ctx.profile * mod * (1.0 - p["nucleolar_exclusion"] * sh["nl"])
    return e * (nuc + p["bg_frac"] * ctx.cyto), []


def _p_nuclear_punctae(ctx, p, sh):
    e = ctx.per_pixel(ctx.e)
    counts = ctx.counts(p["count"], ctx.e > 0)
    ci, y, x = ctx.sample_nucleus(counts, umax=0.85)
    nl = sh["nl"][
        np.clip(np.rint(y).astype(int), 0, ctx.size - 1),
        np.clip(np.rint(x).astype(int), 0, ctx.size - 1),
    ]
    keep = nl < 0.3
    ci, y, x = ci[keep], y[keep], x[keep]
    nuc_area = np.pi * ctx.cells.r0**2
    w = ctx.weights(ci, (1 - p["bg_frac"]) * ctx.e * nuc_area, spread=p["spread"])
    return e * ctx.profile * p["bg_frac"], [(p["size"] * ctx.s, y, x, w)]


def _cyto_shape(ctx, falloff):
    return ctx.cyto * (1.0 - 0.85 * ctx.t**falloff)


def _p_cytoplasmic(ctx, p, sh):
    e = ctx.per_pixel(ctx.e)
    shape = _cyto_shape(ctx, p["edge_falloff"]) * (1.0 + 1.5 * p["perinuclear"] * (1 - ctx.t) ** 2)
    tex = np.clip(1.0 + p["texture"] * sh["tex_cyto"], 0.1, None)
    return e * (shape * tex + p["nuclear_frac"] * ctx.profile), []


def _p_er(ctx, p, sh):
    e = ctx.per_pixel(ctx.e)
    w = ctx.rng.standard_normal((ctx.size, ctx.size), dtype=np.float32)
    sig = p["mesh"] * ctx.s
    g = _blur(w, sig) - _blur(w, 1.6 * sig)
    g /= max(float(g.std()), 1e-6)
    net = np.exp(-((g / p["width"]) ** 2))
    dens = np.exp(-ctx.t / (0.12 + 0.9 * (1.0 - p["perinuclear"])))
    cyto = ctx.cyto * (2.5 * net * dens + p["diffuse_frac"])
    return e * (cyto + 3.0 * p["envelope"] * ctx.rim(1.0)), []


def _segments(ctx, ci, y, x, length, k, curvature=0.0):
    """Points along short curved segments centred at (y, x), kept in their cell."""
    ang = ctx.rng.uniform(0, np.pi, ci.size)
    curv = ctx.rng.normal(0.0, curvature, ci.size)
    s = np.linspace(-0.5, 0.5, k)[None, :] * length[:, None]
    dy, dx = np.sin(ang)[:, None], np.cos(ang)[:, None]
    off = curv[:, None] * s**2
    py = (y[:, None] + s * dy + off * dx).ravel()
    px = (x[:, None] + s * dx - off * dy).ravel()
    pc = np.repeat(ci, k)
    ok = ctx._keep(pc, py, px, None)
    return pc[ok], py[ok], px[ok]


def _p_mitochondria(ctx, p, sh):
    e = ctx.per_pixel(ctx.e)
    counts = ctx.counts(p["count"], ctx.e > 0)
    ci, y, x = ctx.sample_cyto(counts, p["perinuclear"])
    length = p["length"] * ctx.s * np.exp(ctx.rng.normal(0.0, 0.35, ci.size))
    pc, py, px = _segments(ctx, ci, y, x, length, 12, curvature=0.08 / ctx.s)
    w = ctx.weights(pc, 0.6 * ctx.e * ctx.area[1:])
    return e * ctx.cyto * 0.08, [(p["size"] * ctx.s, py, px, w)]


def _p_vesicles(ctx, p, sh):
    e = ctx.per_pixel(ctx.e)
    counts = ctx.counts(p["count"], ctx.e > 0)
    ci, y, x = ctx.sample_cyto(counts, p["perinuclear"])
    w = ctx.weights(ci, (1 - p["diffuse_frac"]) * ctx.e * ctx.area[1:], spread=p["spread"])
    return e * ctx.cyto * p["diffuse_frac"], [(p["size"] * ctx.s, y, x, w)]


def _p_golgi(ctx, p, sh):
    c = ctx.cells
    e = ctx.per_pixel(ctx.e)
    rng = ctx.rng
    active = (ctx.e > 0) & ~c.mitotic
    m = 240
    cells = np.flatnonzero(active)
    ci = np.repeat(cells, m)
    direction = rng.uniform(0, 2 * np.pi, ctx.n)
    n_st = np.maximum(1, rng.poisson(p["stacks"], ctx.n))
    extent = p["extent"] * np.exp(rng.normal(0.0, 0.2, ctx.n))
    stack = np.floor(rng.random(ci.size) * n_st[ci])
    centre = direction[ci] + extent[ci] * ((stack + 0.5) / n_st[ci] - 0.5)
    theta = centre + 0.45 * extent[ci] / n_st[ci] * rng.uniform(-1, 1, ci.size)
    rho = c.nuc_radius(ci, theta) + ctx.s * (
        p["gap"] + p["thickness"] * np.abs(rng.normal(0.0, 1.0, ci.size))
    )
    y = c.cy[ci] + rho * np.sin(theta)
    x = c.cx[ci] + rho * np.cos(theta)
    ok = ctx._keep(ci, y, x, None)
    ci, y, x = ci[ok], y[ok], x[ok]
    total = 0.3 * (1 - p["diffuse_frac"]) * ctx.e * ctx.area[1:]
    w = ctx.weights(ci, total)
    # mitotic cells: Golgi fragmented and dispersed
    mit = ctx.counts(60.0, (ctx.e > 0) & c.mitotic, jitter=0.1)
    mi, my, mx = ctx.sample_cyto(mit, 0.2)
    mw = ctx.weights(mi, total)
    deposits = [
        (0.9 * ctx.s, np.concatenate([y, my]), np.concatenate([x, mx]), np.concatenate([w, mw]))
    ]
    return e * ctx.cyto * p["diffuse_frac"], deposits


def _p_membrane(ctx, p, sh):
    e = ctx.per_pixel(ctx.e)
    lab = ctx.labels
    edge = np.zeros(lab.shape, bool)
    edge[1:] |= lab[1:] != lab[:-1]
    edge[:-1] |= lab[:-1] != lab[1:]
    edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    edge &= ctx.inside
    ey, ex = np.nonzero(edge)
    ci = lab[ey, ex] - 1
    w = 3.0 * (1 - p["puncta_frac"]) * ctx.e[ci]
    deposits = [(p["thickness"] * ctx.s, ey.astype(float), ex.astype(float), w)]
    # bright membrane puncta (ruffles, endocytic sites) on a subset of edge pixels
    pick = ctx.rng.random(ey.size) < 0.08
    wp = 3.0 * p["puncta_frac"] * ctx.e[ci[pick]] / 0.08
    deposits.append((0.8 * ctx.s, ey[pick].astype(float), ex[pick].astype(float), wp))
    diffuse = e * p["cyto_frac"] * (_cyto_shape(ctx, 1.0) + 0.3 * ctx.profile)
    return diffuse, deposits


def _centrosome_positions(ctx, gap):
    c = ctx.cells
    theta = ctx.rng.uniform(0, 2 * np.pi, ctx.n)
    idx = np.arange(ctx.n)
    rho = c.nuc_radius(idx, theta) + gap * ctx.s
    return c.cy + rho * np.sin(theta), c.cx + rho * np.cos(theta)


def _p_centrosome(ctx, p, sh):
    e = ctx.per_pixel(ctx.e)
    rng = ctx.rng
    cy, cx = sh["centrosome"]
    active = ctx.e > 0
    two = rng.random(ctx.n) < 0.5
    ci = np.concatenate([np.flatnonzero(active), np.flatnonzero(active & two)])
    off = np.where(np.arange(ci.size) < active.sum(), 0.0, 2.5 * ctx.s)
    ang = rng.uniform(0, 2 * np.pi, ci.size)
    y = cy[ci] + off * np.sin(ang)
    x = cx[ci] + off * np.cos(ang)
    w = ctx.weights(ci, p["dot_frac"] * ctx.e * ctx.area[1:])
    sat_n = ctx.counts(p["satellites"] + 1e-9, active)
    si = np.repeat(np.arange(ctx.n), sat_n)
    rad = 5.0 * ctx.s * np.sqrt(rng.random(si.size))
    ang = rng.uniform(0, 2 * np.pi, si.size)
    sy = cy[si] + rad * np.sin(ang)
    sx = cx[si] + rad * np.cos(ang)
    sw = ctx.weights(si, 0.25 * p["dot_frac"] * ctx.e * ctx.area[1:])
    diffuse = e * (0.6 * _cyto_shape(ctx, 1.0) + 0.1 * ctx.profile)
    return diffuse, [(p["size"] * ctx.s, y, x, w), (0.8 * ctx.s, sy, sx, sw)]


def _p_cytoskeleton(ctx, p, sh):
    c = ctx.cells
    e = ctx.per_pixel(ctx.e)
    rng = ctx.rng
    counts = ctx.counts(p["count"], ctx.e > 0)
    fi = np.repeat(np.arange(ctx.n), counts)
    radial = rng.random(fi.size) < p["radial"]
    cy, cx = sh["centrosome"]
    # radial filaments start at the centrosome; the others cross the cell along its
    # long axis, shifted towards the cortex
    ang_r = rng.uniform(0, 2 * np.pi, fi.size)
    ang_c = c.phi[fi] + rng.normal(0.0, 0.35, fi.size)
    pos_ang = rng.uniform(0, 2 * np.pi, fi.size)
    t = rng.random(fi.size) ** (1.0 / (1.0 + 3.0 * p["cortical"]))
    rho = t * 0.85 * c.cell_radius(fi, pos_ang)
    oy = np.where(radial, cy[fi], c.cy[fi] + rho * np.sin(pos_ang))
    ox = np.where(radial, cx[fi], c.cx[fi] + rho * np.cos(pos_ang))
    ang = np.where(radial, ang_r, ang_c)
    k = 48
    span = 2.2 * c.cell_r[fi]
    s = np.linspace(0.0, 1.0, k)[None, :] * span[:, None]
    s = np.where(radial[:, None], s, s - 0.5 * span[:, None])
    curv = rng.normal(0.0, 0.004 / ctx.s, fi.size)[:, None] * s**2
    py = (oy[:, None] + s * np.sin(ang)[:, None] + curv * np.cos(ang)[:, None]).ravel()
    px = (ox[:, None] + s * np.cos(ang)[:, None] - curv * np.sin(ang)[:, None]).ravel()
    pc = np.repeat(fi, k)
    ok = ctx._keep(pc, py, px, None)
    pc, py, px = pc[ok], py[ok], px[ok]
    w = ctx.weights(pc, (1 - p["diffuse_frac"]) * ctx.e * ctx.area[1:])
    diffuse = e * p["diffuse_frac"] * (_cyto_shape(ctx, 1.0) + 0.3 * ctx.profile)
    return diffuse, [(p["size"] * ctx.s, py, px, w)]


def _p_mixed(ctx, p, sh):
    e = ctx.per_pixel(ctx.e)
    r = np.clip(p["nuclear_ratio"] + ctx.rng.normal(0.0, 0.05, ctx.n), 0.02, 0.98)
    rp = ctx.per_pixel(r)
    tex = np.clip(1.0 + p["texture"] * sh["tex_cyto"], 0.1, None)
    nuc = 2.0 * rp * ctx.profile
    cyto = 2.0 * (1.0 - rp) * _cyto_shape(ctx, 1.0)
    return e * (nuc + cyto) * tex, []


_PATTERNS = {
    "nucleoplasm": _p_nucleoplasm,
    "nucleolus_gc": _p_nucleolus,
    "nuclear_membrane": _p_nuclear_membrane,
    "chromatin": _p_chromatin,
    "nuclear_punctae": _p_nuclear_punctae,
    "cytoplasmic": _p_cytoplasmic,
    "er": _p_er,
    "mitochondria": _p_mitochondria,
    "vesicles": _p_vesicles,
    "golgi": _p_golgi,
    "membrane": _p_membrane,
    "centrosome": _p_centrosome,
    "cytoskeleton": _p_cytoskeleton,
    "mixed": _p_mixed,
}


def _jitter_params(rng, family, params, amount):
    spec = FAMILIES[family]
    out = {}
    for k, v in params.items():
        lo, hi = spec.params[k]
        val = v * float(np.exp(rng.normal(0.0, amount))) if v > 0 else v
        width = hi - lo
        out[k] = float(np.clip(val, max(lo - 0.25 * width, 0.0), hi + 0.25 * width))
    if family == "mixed":
        out["nuclear_ratio"] = float(np.clip(out["nuclear_ratio"], 0.02, 0.98))
    return out


def _zstack(images, zmap, z_planes, scale, psf):
    """Blur/dim each pixel by its distance to its focal plane; (C, Z, H, W) float32."""
    c, h, w = images.shape
    hw = h * w
    step = 1.5 * scale
    levels = 4
    sigmas = step * np.arange(levels)
    stack = np.empty((c, levels + 1, hw), np.float32)
    for ch in range(c):
        cur = _blur(images[ch], psf)
        stack[ch, 0] = cur.ravel()
        for k in range(1, levels):
            cur = _blur(cur, float(np.sqrt(sigmas[k] ** 2 - sigmas[k - 1] ** 2)))
            stack[ch, k] = cur.ravel()
        stack[ch, levels] = stack[ch, levels - 1]
    diff = stack[:, 1:] - stack[:, :-1]
    flat = stack.reshape(c, -1)
    dflat = diff.reshape(c, -1)
    base = np.arange(hw)
    zf = zmap.ravel()
    out = np.empty((c, z_planes, hw), np.float32)
    blur_per_plane = 1.0 * scale  # px of blur per plane of defocus
    for z in range(z_planes):
        delta = np.abs(np.float32(z) - zf)
        f = np.minimum(delta * (blur_per_plane / step), levels - 1 - 1e-3)
        i = f.astype(np.intp)
        frac = (f - i).astype(np.float32)
        idx = i * hw + base
        att = (1.0 / np.sqrt(1.0 + (delta / 3.0) ** 2)).astype(np.float32)
        for ch in range(c):
            out[ch, z] = (flat[ch].take(idx) + frac * dflat[ch].take(idx)) * att
    return out.reshape(c, z_planes, h, w)


def _render_hoechst(ctx: _Ctx, rng: np.random.Generator, physics: FieldPhysics) -> tuple:
    """The Hoechst image and what the protein patterns reuse (nucleoli, texture)."""
    size, n, c, scale = ctx.size, ctx.n, ctx.cells, ctx.s
    hoechst_field = rng.uniform(*physics.hoechst_level)
    g2 = rng.random(n) < 0.3
    h = hoechst_field * np.exp(rng.normal(0.0, 0.2, n)) * np.where(g2, 1.5, 1.0)
    h = np.where(c.mitotic, h * 2.0, h)
    tex = 0.65 * _noise(rng, size, 1.0 * scale) + 0.35 * _noise(rng, size, 2.5 * scale)
    chromo_n = ctx.counts(14.0, np.ones(n, bool))
    ci, y, x = ctx.sample_nucleus(chromo_n, umax=0.85)
    nuc_area = np.pi * c.r0**2
    w = ctx.weights(ci, 0.12 * nuc_area, spread=0.5)
    chromo = _blur(_splat(size, y, x, w), 1.3 * scale).astype(np.float32)
    mit_px = ctx.per_pixel(c.mitotic.astype(float)) > 0
    hmod = np.where(mit_px, 1.0 + 0.35 * tex, 1.0 + 0.15 * tex + chromo)
    hmod = np.clip(hmod, 0.2, None)
    nucleoli = _nucleoli(ctx, rng)
    nl = _disk_map(ctx, *nucleoli)
    hoechst = ctx.per_pixel(h) * ctx.profile * hmod * (1.0 - 0.55 * nl)
    in_nuc = ctx.nuc
    hm_mean = float(hmod[in_nuc].mean()) if in_nuc.any() else 1.0
    return hoechst, (nl, nucleoli, hmod, hm_mean)


def _render_protein(
    ctx: _Ctx,
    rng: np.random.Generator,
    family: str,
    params: dict[str, float],
    protein_level: float,
    physics: FieldPhysics,
    hoechst_parts: tuple,
) -> np.ndarray:
    """The tagged protein's image: its family's pattern at each cell's expression."""
    nl, nucleoli, hmod, hm_mean = hoechst_parts
    size, n, c, scale = ctx.size, ctx.n, ctx.cells, ctx.s
    spec = FAMILIES[family]
    e = protein_level * np.exp(rng.normal(0.0, physics.expression_sigma, n))
    ctx.e = np.where(c.mitotic, 0.0, e) if spec.nuclear else e
    shared = _Lazy(
        nl=lambda: nl,
        nucleoli=lambda: nucleoli,
        hoechst_mod=lambda: hmod / hm_mean,
        speckle=lambda: _noise(rng, size, 0.6 * scale),
        tex_cyto=lambda: _noise(rng, size, 1.5 * scale),
        centrosome=lambda: _centrosome_positions(ctx, 2.5),
    )
    diffuse, deposits = _PATTERNS[family](ctx, params, shared)
    protein = np.zeros((size, size), np.float32) if diffuse is None else diffuse.astype(np.float32)
    for sigma, py, px, pw in deposits:
        protein += _blur(_splat(size, py, px, pw), float(sigma)).astype(np.float32)
    if spec.nuclear:
        # no nuclear envelope in mitosis: nuclear proteins fill the cell around the
        # condensed chromosomes
        em = ctx.per_pixel(np.where(c.mitotic, e, 0.0))
        protein += em * ctx.cyto * 0.8
    return protein


def _focus(
    ctx: _Ctx, rng: np.random.Generator, images: np.ndarray, physics: FieldPhysics
) -> tuple[np.ndarray, np.ndarray]:
    """The z-stack: each cell at its own focal plane (some out of focus); and those cells."""
    size, n, c, scale = ctx.size, ctx.n, ctx.cells, ctx.s
    z_planes = physics.z_planes
    zc = (z_planes - 1) * rng.uniform(0.35, 0.65)
    zcell = zc + rng.normal(0.0, 0.6, n)
    oof = rng.random(n) < physics.out_of_focus_fraction
    zcell = np.where(oof, zc + rng.choice([-1.0, 1.0], n) * rng.uniform(3.0, 5.0, n), zcell)
    # focal plane per pixel, smoothed across cell borders (on a 4× coarser grid)
    zsmall = np.concatenate([[zc], zcell])[c.labels[2::4, 2::4]].astype(np.float32)
    zsmall = _blur(zsmall, 0.5 * scale)
    zmap = np.repeat(np.repeat(zsmall, 4, axis=0), 4, axis=1)[:size, :size]
    if zmap.shape != (size, size):
        zmap = np.pad(zmap, ((0, size - zmap.shape[0]), (0, size - zmap.shape[1])), mode="edge")
    psf = rng.uniform(0.8, 1.1) * scale
    return _zstack(images, zmap, z_planes, scale, psf), oof


def _camera(rng: np.random.Generator, signal: np.ndarray, physics: FieldPhysics) -> np.ndarray:
    """Shot and read noise, offset and 16-bit rounding of a camera."""
    gain = rng.uniform(1.0, 2.5)
    read = rng.uniform(2.0, 5.0)
    offset = np.rint(physics.background + rng.normal(0.0, 5.0, signal.shape[0]))
    offset = offset.astype(np.float32)
    np.maximum(signal, 0.0, out=signal)
    noise = rng.standard_normal(signal.shape, dtype=np.float32)
    sd = signal * np.float32(gain)
    sd += np.float32(read**2)
    np.sqrt(sd, out=sd)
    noise *= sd
    noise += signal
    noise += (offset + np.float32(0.5))[:, None, None, None]
    np.clip(noise, 0, 65535, out=noise)
    return noise.astype(np.uint16)  # +0.5 then truncation: rounding


def render_field(
    rng: np.random.Generator,
    cells: Cells,
    *,
    family: str,
    params: dict[str, float],
    protein_level: float,
    scale: float,
    physics: FieldPhysics,
) -> tuple[np.ndarray, dict]:
    """Render the (2, Z, H, W) uint16 stack of one field; returns (stack, info)."""
    ctx = _Ctx(rng, cells, scale)
    params = _jitter_params(rng, family, params, physics.param_jitter)
    hoechst, hoechst_parts = _render_hoechst(ctx, rng, physics)
    protein = _render_protein(ctx, rng, family, params, protein_level, physics, hoechst_parts)
    # ---- optics and camera (the draws keep their order: atlases stay bit-identical)
    size = ctx.size
    autofl = rng.uniform(8.0, 25.0)
    medium = rng.uniform(3.0, 15.0)
    protein += autofl * ctx.inside + medium
    yy = (np.arange(size, dtype=np.float32) / size - rng.uniform(0.3, 0.7))[:, None]
    xx = (np.arange(size, dtype=np.float32) / size - rng.uniform(0.3, 0.7))[None, :]
    illum = (1.0 - rng.uniform(0.1, 0.35) * (yy**2 + xx**2) / 0.5).astype(np.float32)
    images = np.stack([hoechst * illum, protein * illum]).astype(np.float32)
    signal, oof = _focus(ctx, rng, images, physics)
    stack = _camera(rng, signal, physics)
    n, c = ctx.n, cells
    info = {
        "n_cells": n,
        "mitotic": np.flatnonzero(c.mitotic) + 1,
        "out_of_focus": np.flatnonzero(oof) + 1,
        "params": params,
    }
    return stack, info
