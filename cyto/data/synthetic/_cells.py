"""Cell geometry of one synthetic field: placement, nuclei, territories, nucleoli.

Every cell has an irregular elliptical nucleus ``r_nuc(θ)`` and a larger irregular
territory ``R(θ)`` around the same centre. Each pixel belongs to the cell with the
smallest normalized nuclear radius ``u = ρ / r_nuc(θ)`` among the cells whose territory
contains it (``v = ρ / R(θ) < 1``): a Voronoi partition weighted by nucleus size and
limited by a maximum radius. The nucleus of a cell is where ``u < 1``; touching nuclei
meet along the line where their normalized radii are equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Cells", "layout_cells"]

_NUC_HARMONICS = (2, 3, 4, 5)
_CELL_HARMONICS = (1, 2, 3)


@dataclass
class Cells:
    """Per-cell parameters (arrays of length ``n``) and per-pixel maps of one field."""

    cy: np.ndarray
    cx: np.ndarray
    r0: np.ndarray  # mean nucleus radius (px)
    aspect: np.ndarray  # nucleus aspect ratio (>= 1)
    phi: np.ndarray  # orientation (rad)
    nuc_harm: np.ndarray  # (n, len(_NUC_HARMONICS)) complex coefficients
    cell_r: np.ndarray  # mean territory radius (px)
    cell_harm: np.ndarray  # (n, len(_CELL_HARMONICS)) complex coefficients
    mitotic: np.ndarray  # bool
    labels: np.ndarray  # (H, W) int32, 0 = background, i + 1 = cell i
    u: np.ndarray  # (H, W) float32 normalized nuclear radius of the owner cell
    v: np.ndarray  # (H, W) float32 normalized territory radius of the owner cell
    area: np.ndarray  # (n + 1,) pixel count per label (index 0 = background)

    @property
    def n(self) -> int:
        return int(self.cy.size)

    @property
    def nuclei(self) -> np.ndarray:
        """Nucleus label image (0 = background, i + 1 = nucleus of cell i)."""
        return np.where(self.u < 1.0, self.labels, 0).astype(np.int32)

    def nuc_radius(self, idx: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Nucleus radius of cells ``idx`` at angles ``theta`` (broadcast together)."""
        return _ellipse(self.r0[idx], self.aspect[idx], self.phi[idx], theta) * _harmonic(
            self.nuc_harm[idx], _NUC_HARMONICS, theta
        )

    def cell_radius(self, idx: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Territory radius of cells ``idx`` at angles ``theta``."""
        aspect = np.sqrt(self.aspect[idx])
        return _ellipse(self.cell_r[idx], aspect, self.phi[idx], theta) * _harmonic(
            self.cell_harm[idx], _CELL_HARMONICS, theta
        )


def _ellipse(r0, aspect, phi, theta):
    return _ellipse_cs(r0, aspect, phi, np.cos(theta), np.sin(theta))


def _ellipse_cs(r0, aspect, phi, c1, s1):
    """Ellipse radius at the angle whose cosine/sine are (c1, s1)."""
    a = r0 * np.sqrt(aspect)
    b = r0 / np.sqrt(aspect)
    cp, sp = np.cos(phi), np.sin(phi)
    if isinstance(phi, float):
        cp, sp = float(cp), float(sp)
    c = c1 * cp + s1 * sp  # cos(theta - phi)
    s = s1 * cp - c1 * sp  # sin(theta - phi)
    return a * b / np.sqrt((b * c) ** 2 + (a * s) ** 2)


def _harmonic(coef, orders, theta):
    return _harmonic_cs(coef, orders, np.cos(theta), np.sin(theta))


def _harmonic_cs(coef, orders, c1, s1):
    """1 + sum_k Re(coef_k exp(i k theta)) from cos/sin of theta (Chebyshev recurrence)."""
    out = np.ones(np.broadcast(coef[..., 0], c1).shape, dtype=np.result_type(c1, np.float32))
    ck, sk = c1, s1
    k = 1
    for j, order in enumerate(orders):
        while k < order:
            ck, sk = ck * c1 - sk * s1, sk * c1 + ck * s1
            k += 1
        cj = coef[..., j]
        out += cj.real * ck - cj.imag * sk
    return out


def _place(rng, n_target, size, radii, clump, min_gap):
    """Sequential placement in colonies with a minimum centre distance."""
    n_col = 1 + rng.poisson(2.0)
    col = rng.uniform(0.1 * size, 0.9 * size, (n_col, 2))
    col_sigma = size * rng.uniform(0.08, 0.2, n_col)
    pos = np.empty((n_target, 2))
    rad = np.empty(n_target)
    placed = 0
    for _ in range(n_target * 40):
        if placed == n_target:
            break
        r = radii[placed]
        if rng.random() < clump:
            k = rng.integers(n_col)
            p = col[k] + rng.normal(0.0, col_sigma[k], 2)
        else:
            p = rng.uniform(-0.5 * r, size + 0.5 * r, 2)
        if not (-0.6 * r <= p[0] <= size + 0.6 * r and -0.6 * r <= p[1] <= size + 0.6 * r):
            continue
        if placed:
            d = np.hypot(*(pos[:placed] - p).T)
            if np.any(d < min_gap[placed] * (rad[:placed] + r)):
                continue
        pos[placed] = p
        rad[placed] = r
        placed += 1
    return pos[:placed], placed


def layout_cells(
    rng: np.random.Generator,
    *,
    size: int,
    scale: float,
    n_cells: int,
    nucleus_diameter: tuple[float, float],
    mitotic_fraction: float,
    clump: float,
) -> Cells:
    """Place cells in a ``size``×``size`` field and rasterize nuclei and territories."""
    dmin, dmax = nucleus_diameter
    r0 = rng.uniform(dmin / 2, dmax / 2, n_cells) * scale
    min_gap = rng.uniform(1.0, 1.2, n_cells)
    pos, n = _place(rng, n_cells, size, r0, clump, min_gap)
    r0 = r0[:n]
    mitotic = rng.random(n) < mitotic_fraction
    aspect = rng.uniform(1.0, 1.4, n)
    phi = rng.uniform(0, np.pi, n)
    amp = rng.uniform(0.0, 0.035, (n, len(_NUC_HARMONICS)))
    nuc_harm = amp * np.exp(1j * rng.uniform(0, 2 * np.pi, amp.shape))
    cell_r = r0 * rng.uniform(1.7, 2.5, n)
    camp = rng.uniform(0.0, 0.16, (n, len(_CELL_HARMONICS)))
    cell_harm = camp * np.exp(1j * rng.uniform(0, 2 * np.pi, camp.shape))
    # mitotic cells: rounded, condensed chromosomes (small, bright, elongated plate)
    cell_r = np.where(mitotic, r0 * 1.6, cell_r)
    r0 = np.where(mitotic, r0 * rng.uniform(0.5, 0.65, n), r0)
    aspect = np.where(mitotic, rng.uniform(1.5, 2.2, n), aspect)
    nuc_harm[mitotic] *= 2.5

    labels = np.zeros((size, size), np.int32)
    u_map = np.full((size, size), np.inf, np.float32)
    v_map = np.ones((size, size), np.float32)
    cells = Cells(
        cy=pos[:, 0].copy(),
        cx=pos[:, 1].copy(),
        r0=r0,
        aspect=aspect,
        phi=phi,
        nuc_harm=nuc_harm,
        cell_r=cell_r,
        cell_harm=cell_harm,
        mitotic=mitotic,
        labels=labels,
        u=u_map,
        v=v_map,
        area=np.zeros(n + 1),
    )
    rmax = cell_r * (1.0 + np.abs(cell_harm).sum(1)) * np.sqrt(np.sqrt(aspect)) + 2
    for i in range(n):
        y0 = max(int(np.floor(cells.cy[i] - rmax[i])), 0)
        y1 = min(int(np.ceil(cells.cy[i] + rmax[i])) + 1, size)
        x0 = max(int(np.floor(cells.cx[i] - rmax[i])), 0)
        x1 = min(int(np.ceil(cells.cx[i] + rmax[i])) + 1, size)
        if y0 >= y1 or x0 >= x1:
            continue
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cells.cy[i])
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cells.cx[i])
        rho = np.hypot(dy, dx)
        inv = np.float32(1.0) / np.maximum(rho, np.float32(1e-6))
        c1 = dx * inv
        s1 = dy * inv
        rn = _ellipse_cs(float(r0[i]), float(aspect[i]), float(phi[i]), c1, s1) * _harmonic_cs(
            nuc_harm[i].astype(np.complex64), _NUC_HARMONICS, c1, s1
        )
        rc = _ellipse_cs(
            float(cell_r[i]), float(np.sqrt(aspect[i])), float(phi[i]), c1, s1
        ) * _harmonic_cs(cell_harm[i].astype(np.complex64), _CELL_HARMONICS, c1, s1)
        u = rho / rn
        v = rho / rc
        box_u = u_map[y0:y1, x0:x1]
        take = (v < 1.0) & (u < box_u)
        box_u[take] = u[take]
        v_map[y0:y1, x0:x1][take] = v[take]
        labels[y0:y1, x0:x1][take] = i + 1
    u_map[labels == 0] = np.inf
    cells.area = np.bincount(labels.ravel(), minlength=n + 1).astype(float)
    return cells
