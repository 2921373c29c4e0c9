"""Signed distance to the nuclear boundary."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["signed_distance"]


def _check_labels(labels: object, name: str = "labels") -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D, got {arr.ndim}-D shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int32)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"`{name}` must be an integer label image, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"`{name}` must be non-negative (0 = background), got min {arr.min()}")
    return arr


def signed_distance(labels: np.ndarray) -> np.ndarray:
    """Signed Euclidean distance to the nearest nuclear boundary.

    Inside a nucleus the value is the distance to that nucleus' own boundary
    (positive; touching nuclei are separated by their shared border; the
    image border is not a nuclear boundary), outside it
    is minus the distance to the nearest nucleus (negative). Boundary pixels of
    a nucleus hold 1 on the inside.

    Parameters
    ----------
    labels : (M, N) int or bool ndarray
        Instance labels (0 = background), e.g. from :func:`segment_nuclei`.

    Returns
    -------
    distance : (M, N) float32 ndarray
        In pixels. Without any nucleus, the field is ``-(M + N)`` everywhere
        (farther than any distance in the image).

    Raises
    ------
    ValueError
        If ``labels`` is not 2-D or has negative values.
    TypeError
        If ``labels`` is not an integer or bool array.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((1, 7), np.int32)
    >>> lab[0, 2:5] = 1
    >>> signed_distance(lab)
    array([[-2., -1.,  1.,  2.,  1., -1., -2.]], dtype=float32)
    """
    lab = _check_labels(labels)
    fg = lab > 0
    if not fg.any():
        return np.full(lab.shape, -float(sum(lab.shape)), dtype=np.float32)
    # pixels on the inner boundary of each nucleus: a 4-neighbour with another label
    p = np.pad(lab, 1, mode="edge")
    centre = p[1:-1, 1:-1]
    edge = (
        (p[:-2, 1:-1] != centre)
        | (p[2:, 1:-1] != centre)
        | (p[1:-1, :-2] != centre)
        | (p[1:-1, 2:] != centre)
    )
    boundary = fg & edge
    # one transform serves both sides: the distance to the nearest boundary pixel,
    # + 1 inside (boundary pixels hold 1, touching nuclei count from their shared
    # border) and negated outside (a pixel next to a nucleus holds -1)
    dist = ndi.distance_transform_edt(~boundary).astype(np.float32)
    np.negative(dist, out=dist, where=~fg)
    dist[fg] += 1.0
    return dist
