"""Small synthetic Hoechst fields for the preprocessing tests."""

from __future__ import annotations

import numpy as np


def nuclei_field(
    shape: tuple[int, int],
    centers: list[tuple[float, float]],
    radius: float,
    *,
    background: float = 300.0,
    signal: float = 3000.0,
    noise: float = 30.0,
    seed: int = 0,
    elongation: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Blurred elliptic nuclei on a noisy background; returns (image, true labels)."""
    from scipy import ndimage as ndi

    rows, cols = np.indices(shape, dtype=np.float32)
    labels = np.zeros(shape, np.int32)
    for i, (r, c) in enumerate(centers, start=1):
        inside = ((rows - r) / (radius * elongation)) ** 2 + ((cols - c) / radius) ** 2 <= 1
        labels[inside & (labels == 0)] = i
    img = np.where(labels > 0, signal, 0.0).astype(np.float32)
    img = ndi.gaussian_filter(img, max(1.0, radius / 12)) + background
    rng = np.random.default_rng(seed)
    img += rng.normal(0, noise, shape).astype(np.float32)
    return img.astype(np.float32), labels


def grid_centers(
    shape: tuple[int, int], spacing: float, margin: float
) -> list[tuple[float, float]]:
    """Centres on a regular grid."""
    rs = np.arange(margin, shape[0] - margin + 1e-6, spacing)
    cs = np.arange(margin, shape[1] - margin + 1e-6, spacing)
    return [(float(r), float(c)) for r in rs for c in cs]
