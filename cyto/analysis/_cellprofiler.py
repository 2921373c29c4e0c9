"""CellProfiler features of crops, computed with ``cp-measure`` (the ``cellprofiler`` extra).

The field's standard hand-crafted baseline: for the crop's centred nucleus, every
stain's intensity, texture (Haralick), granularity and radial distribution, and the
nucleus's size and shape, as CellProfiler's ``MeasureObject*`` modules compute them
(``cp-measure`` reimplements them on arrays). Why cp-measure rather than our own
feature code: it is CellProfiler's own measurement code, so its features are the ones a
lab moving from CellProfiler + pycytominer knows; cyto's ``intensity`` baseline
(:func:`~cyto.analysis.baseline_features`) stays as the cheap, dependency-free one.

The object is found in the crop itself: the signed-distance channel's inside (> 0) when
the store has one, else Otsu's threshold of the nuclear stain; the connected piece
holding the crop's centre (else the largest).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from cyto.data._channels import NUCLEAR_STAINS

__all__ = ["CP_MEASUREMENTS", "cellprofiler_features", "nucleus_mask"]

#: cp-measure's per-stain measurements used (``sizeshape`` is measured once, on the mask).
CP_MEASUREMENTS = ("intensity", "texture", "granularity", "radial_distribution")


def _nuclear_channel(channels: Sequence[str], nucleus_channel: str | None) -> int | None:
    if nucleus_channel is not None:
        if nucleus_channel not in channels:
            raise ValueError(
                f"`nucleus_channel` {nucleus_channel!r} is not one of the channels {list(channels)}"
            )
        return list(channels).index(nucleus_channel)
    return next((list(channels).index(c) for c in NUCLEAR_STAINS if c in channels), None)


def nucleus_mask(crop: np.ndarray, channels: Sequence[str], nucleus_channel: str | None = None):
    """The label image (1 = the centred nucleus, 0 elsewhere) of one crop ``(C, S, S)``.

    From the ``distance`` channel (inside > 0) when there is one, else Otsu's threshold
    of the nuclear stain; the piece holding the centre, else the largest; the whole crop
    when neither gives an object.
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    names = list(channels)
    if "distance" in names:
        inside = crop[names.index("distance")] > 0
    else:
        k = _nuclear_channel(names, nucleus_channel)
        image = crop[0 if k is None else k]
        inside = image > threshold_otsu(image) if np.ptp(image) > 0 else np.zeros_like(image, bool)
    labels, n = ndi.label(inside)
    if n == 0:
        return np.ones(crop.shape[1:], dtype=np.int32)
    s = crop.shape[1] // 2
    keep = labels[s, s] or 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    return (labels == keep).astype(np.int32)


def _crop_features(
    crop: np.ndarray,
    core: dict[str, Any],
    stains: list[tuple[int, str]],
    measurements: Sequence[str],
    channels: Sequence[str],
    nucleus_channel: str | None,
) -> dict[str, float]:
    """One crop's features by name: every stain on the nucleus, then its shape."""
    mask = nucleus_mask(crop, channels, nucleus_channel)
    feats: dict[str, float] = {}
    for c, name in stains:
        for m in measurements:
            for key, value in core[m](mask, crop[c]).items():
                feats[f"{name}_{key}"] = float(np.asarray(value).ravel()[0])
    for key, value in core["sizeshape"](mask, crop[stains[0][0]]).items():
        feats[f"Nucleus_{key}"] = float(np.asarray(value).ravel()[0])
    return feats


def cellprofiler_features(
    crops: Any,
    channels: Sequence[str],
    *,
    nucleus_channel: str | None = None,
    measurements: Sequence[str] = CP_MEASUREMENTS,
) -> tuple[np.ndarray, list[str]]:
    """CellProfiler features of every crop: each stain measured on the centred nucleus.

    Parameters
    ----------
    crops : (n, C, S, S) array_like
        Crops (any float dtype); each stain is shifted to start at 0 if negative and
        scaled into [0, 1] by its largest value over all ``crops``.
    channels : sequence of str
        Their channel names (``distance`` gives the mask and is not measured).
    nucleus_channel : str, optional
        The nuclear stain (default: the first of
        :data:`cyto.data._channels.NUCLEAR_STAINS` present).
    measurements : sequence of str
        cp-measure core measurements per stain (default :data:`CP_MEASUREMENTS`).

    Returns
    -------
    X : (n, F) float32 ndarray
        Features, NaN (undefined for a tiny object) as 0.
    names : list of str
        ``<channel>_<feature>`` names, then ``Nucleus_<shape feature>``.

    Raises
    ------
    ImportError
        Without ``cp-measure`` (``pip install "cyto[cellprofiler]"``).
    ValueError
        If ``crops`` is not 4-D with one channel name per channel, or a measurement is
        unknown.
    """
    from cyto._optional import require

    bulk = require("cp_measure.bulk", "cellprofiler", purpose="CellProfiler features")
    core = bulk.get_core_measurements()
    unknown = [m for m in measurements if m not in core]
    if unknown:
        raise ValueError(f"`measurements` {unknown} unknown; cp-measure has {sorted(core)}")
    arr = np.asarray(crops, dtype=np.float32)
    if arr.ndim != 4 or arr.shape[1] != len(channels):
        raise ValueError(
            f"`crops` must be (n, C, S, S) with C = {len(channels)} channels, got {arr.shape}"
        )
    stains = [(c, name) for c, name in enumerate(channels) if name != "distance"]
    # CellProfiler measures images in [0, 1]: each stain is scaled by its largest value
    # over all the crops given (relative intensities between crops are kept)
    arr = arr.copy()
    for c, _ in stains:
        arr[:, c] -= min(float(arr[:, c].min()), 0.0)
        top = float(arr[:, c].max())
        if top > 1:
            arr[:, c] /= top
    rows, names = [], None
    # undefined features (texture of a flat stain...) come out NaN with numpy's warnings:
    # they are set to 0 below
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        for crop in arr:
            feats = _crop_features(crop, core, stains, measurements, channels, nucleus_channel)
            names = names or list(feats)
            rows.append([feats.get(k, np.nan) for k in names])
    X = np.nan_to_num(np.asarray(rows, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return X.astype(np.float32).reshape(len(arr), -1), list(names or [])
