"""Small synthetic Hoechst fields for the preprocessing tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


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


# --------------------------------------------------------------------- a small dataset
CROP = 48


def _write_fov(path: Path, seed: int) -> None:
    centers = grid_centers((256, 256), spacing=70, margin=58)
    hoechst, labels = nuclei_field((256, 256), centers, 16, seed=seed)
    rng = np.random.default_rng(seed + 100)
    protein = 200 + 800 * (labels > 0) * rng.random() + rng.normal(0, 20, labels.shape)
    z = np.linspace(0.7, 1.0, 3)[:, None, None]
    stack = np.stack([hoechst * z, protein * z]).clip(0, 65535).astype(np.uint16)
    tifffile.imwrite(path, stack, photometric="minisblack")


def _make_dataset(root: Path, n_good: int = 4, bad: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = ["path,protein_id,fov_id"]
    for i in range(n_good):
        _write_fov(root / f"good{i}.tif", seed=i)
        rows.append(f"good{i}.tif,P{i % 2},g{i}")
    if bad:
        (root / "junk.tif").write_bytes(b"this is not a tiff")
        rows.append("junk.tif,P0,junk")
        tifffile.imwrite(root / "nan.tif", np.full((2, 2, 128, 128), np.nan, np.float32))
        rows.append("nan.tif,P1,nan")
        tifffile.imwrite(root / "one_channel.tif", np.zeros((128, 128), np.uint16))
        rows.append("one_channel.tif,P1,onech")
        tifffile.imwrite(
            root / "time.ome.tif",
            np.zeros((2, 2, 3, 64, 64), np.uint16),
            ome=True,
            metadata={"axes": "TCZYX"},
        )
        rows.append("time.ome.tif,P0,time")
        rows.append("missing.tif,P0,missing")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"
