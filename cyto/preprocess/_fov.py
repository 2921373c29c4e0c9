"""One field of view: z-stacks in, normalized cell-centred crops out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from cyto.preprocess._crop import CellCrops, check_channels, crop_cells, normalize_crops
from cyto.preprocess._distance import signed_distance
from cyto.preprocess._project import downsample
from cyto.preprocess._segmenters import run_segmenter
from cyto.preprocess._validate import as_float_image, check_positive

__all__ = ["NORMALIZE_MODES", "preprocess_fov"]

#: Accepted values of ``normalize`` in :func:`preprocess_fov`.
NORMALIZE_MODES = ("crop", "field", "none")


def _project(image: object, name: str, z_axis: int) -> np.ndarray:
    arr = np.asarray(image) if not isinstance(image, (str, bytes)) else image
    if isinstance(arr, np.ndarray) and arr.ndim == 3:
        if not -3 <= z_axis < 3:
            raise ValueError(f"`z_axis` {z_axis} is out of range for a 3-D `{name}`")
        if arr.shape[z_axis] == 0:
            raise ValueError(f"`{name}` has no z planes (shape {arr.shape})")
        arr = arr.max(axis=z_axis)
    return as_float_image(arr, name, ndim=2)


def _images(
    protein: object, hoechst: object, stains: Mapping[str, object] | None, z_axis: int
) -> dict[str, np.ndarray]:
    """The projected 2-D images by channel name, all of one shape."""
    if stains is None:
        if protein is None or hoechst is None:
            raise TypeError("give `protein` and `hoechst`, or `stains` (with `nucleus_channel`)")
        p, h = _project(protein, "protein", z_axis), _project(hoechst, "hoechst", z_axis)
        if p.shape != h.shape:
            raise ValueError(
                f"`protein` (shape {p.shape} after projection) and `hoechst` (shape {h.shape}) "
                "must have the same shape"
            )
        return {"protein": p, "nucleus": h}
    if protein is not None or hoechst is not None:
        raise TypeError("give `stains` or `protein` and `hoechst`, not both")
    if not isinstance(stains, Mapping) or not stains:
        raise TypeError(f"`stains` must be a non-empty mapping of names to images, got {stains!r}")
    images = {str(k): _project(v, f"stains[{k!r}]", z_axis) for k, v in stains.items()}
    shapes = {k: v.shape for k, v in images.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"the `stains` images must have one shape after projection; got {shapes}")
    return images


def preprocess_fov(
    protein: np.ndarray | None = None,
    hoechst: np.ndarray | None = None,
    *,
    stains: Mapping[str, np.ndarray] | None = None,
    nucleus_channel: str = "nucleus",
    channels: Sequence[str] = ("protein", "distance"),
    downsample_factor: int = 2,
    crop_size: int = 100,
    nucleus_diameter: float | None = None,
    normalize: str = "crop",
    z_axis: int = 0,
    min_contrast: float = 5.0,
    nuclei: np.ndarray | None = None,
    cells: np.ndarray | None = None,
    segmenter: str | Callable[..., np.ndarray] | None = None,
) -> CellCrops:
    """Turn one field of view into normalized crops centred on nuclei.

    The paper's pipeline (Kobayashi et al. 2022, Methods): maximum-intensity
    projection along z, block-mean downsampling ×2 (1024 → 512 px), nucleus
    segmentation of the Hoechst channel (:func:`segment_nuclei`), signed distance
    to the nuclear boundary (:func:`signed_distance`), 100×100 crops centred on
    each nucleus whose crop fits in the field (:func:`crop_cells`), protein
    scaled to [0, 1] and distance to [-1, 1] (:func:`normalize_crops`).

    Any stain set (Cell Painting's DNA, ER, RNA, AGP, Mito...) goes in as ``stains``, a
    mapping of channel names to images, with the nuclear stain named by
    ``nucleus_channel``; every stain is projected, downsampled, cropped and scaled the
    same way.

    Parameters
    ----------
    protein, hoechst : (Z, M, N) or (M, N) ndarray, optional
        Tagged-protein and nuclear channels, z-stacks or already projected; the
        same shape after projection (named ``"protein"`` and ``"nucleus"``).
    stains : mapping of str to (Z, M, N) or (M, N) ndarray, optional
        Instead of ``protein`` and ``hoechst``: every stain of the field by name.
    nucleus_channel : str, default "nucleus"
        The stain segmented into nuclei (a key of ``stains``; ``"nucleus"`` is the
        ``hoechst`` image).
    channels : sequence of str
        Crop channels, in order: names of the images given and ``"distance"`` (signed
        distance to the nuclear boundary). The paper uses ``("protein", "distance")``;
        its ablations ``("protein",)`` and ``("protein", "nucleus")``; a Cell Painting
        screen e.g. ``("DNA", "ER", "RNA", "AGP", "Mito")``.
    downsample_factor : int
        Block-mean factor applied after projection (1 = none).
    crop_size : int
        Crop side in pixels of the downsampled field.
    nucleus_diameter : float, optional
        Typical nucleus diameter in pixels of the *input* images (OpenCell: about
        65); estimated from the image when not given.
    normalize : {"crop", "field", "none"}
        Scale each crop on its own (default), each whole field before cropping, or
        keep raw values (distance in pixels).
    z_axis : int
        Axis of the z planes for 3-D inputs.
    min_contrast : float
        Empty-field test of :func:`segment_nuclei`.
    nuclei : (M, N) integer ndarray, optional
        Nucleus labels made elsewhere (CellProfiler, cellpose, StarDist...), at the
        input resolution: used instead of segmenting (sampled at the downsampled
        pixels' centres).
    cells : (M, N) integer ndarray, optional
        Cell labels at the input resolution: each crop is centred on the cell that holds
        its nucleus (the nucleus with the largest overlap, when a cell holds several);
        nuclei outside every cell and the other nuclei of a cell give no crop.
    segmenter : str or callable, optional
        The nucleus segmenter when ``nuclei`` is not given: a registered name (default
        ``"cyto"``, :func:`segment_nuclei`), ``"package.module:function"`` or a callable
        (see :func:`cyto.preprocess.register_segmenter`).

    Returns
    -------
    CellCrops
        ``crops`` (n, C, crop_size, crop_size) float32, ``centers`` (row, col in
        the downsampled field), ``nucleus_ids``, ``channels`` and the segmentation
        ``labels`` of the downsampled field.

    Raises
    ------
    ValueError
        If the inputs have the wrong ndim or different shapes, hold non-finite
        values, are smaller than one crop after downsampling, or an option is
        unknown or out of range.
    TypeError
        If an input is not a numeric array or an option has the wrong type.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.draw import disk
    >>> rng = np.random.default_rng(0)
    >>> hoechst = rng.normal(300, 10, (5, 256, 256)).astype(np.float32)
    >>> for c in [(80, 80), (80, 170), (170, 120)]:
    ...     hoechst[:, disk(c, 30)[0], disk(c, 30)[1]] += 3000
    >>> protein = rng.random((5, 256, 256)).astype(np.float32)
    >>> out = preprocess_fov(protein, hoechst, crop_size=64)
    >>> out.crops.shape, out.channels
    ((3, 2, 64, 64), ('protein', 'distance'))
    >>> bool(np.abs(out.crops[:, 1]).max() == 1), bool(out.crops[:, 0].max() == 1)
    (True, True)
    """
    names = check_channels(channels)
    if normalize not in NORMALIZE_MODES:
        raise ValueError(f"`normalize` {normalize!r} must be one of {list(NORMALIZE_MODES)}")
    if isinstance(z_axis, bool) or not isinstance(z_axis, (int, np.integer)):
        raise TypeError(f"`z_axis` must be an int, got {type(z_axis).__name__} {z_axis!r}")
    factor = check_positive(downsample_factor, "downsample_factor", integer=True)
    size = check_positive(crop_size, "crop_size", integer=True)
    diameter = check_positive(nucleus_diameter, "nucleus_diameter", allow_none=True)
    images = _images(protein, hoechst, stains, z_axis)
    missing = [n for n in (*names, nucleus_channel) if n != "distance" and n not in images]
    if missing:
        raise ValueError(
            f"`channels`/`nucleus_channel` name {missing}, not among the images given "
            f"({list(images)}) or 'distance'"
        )
    full = images[nucleus_channel].shape
    small = (full[0] // factor, full[1] // factor)
    if min(small) < size:
        raise ValueError(
            f"`{'protein' if stains is None else 'stains'}` field of shape {full} is {small} "
            f"after downsampling ×{factor}, smaller than one crop of crop_size={size}"
        )
    if factor > 1:
        images = {k: downsample(v, factor) for k, v in images.items()}
    h = images[nucleus_channel]
    if nuclei is not None:
        labels = _sample_labels(nuclei, "nuclei", full, h.shape, factor)
    else:
        labels = run_segmenter(
            segmenter,
            h,
            nucleus_diameter=None if diameter is None else diameter / factor,
            min_contrast=min_contrast,
        )
    centring = labels
    if cells is not None:
        centring = _cell_centring(labels, _sample_labels(cells, "cells", full, h.shape, factor))
    planes = [
        signed_distance(labels) if n == "distance" else images[n].astype(np.float32, copy=False)
        for n in names
    ]
    field = np.stack(planes)
    if normalize == "field":
        field = normalize_crops(field[None], channels=names)[0]
    cut = crop_cells(field, centring, size=size, channels=names)
    crops = cut.crops
    if normalize == "crop":
        crops = normalize_crops(crops, channels=names)
    return CellCrops(crops, cut.centers, cut.nucleus_ids, names, labels)


def _sample_labels(
    labels: np.ndarray,
    name: str,
    full: tuple[int, ...],
    shape: tuple[int, ...],
    factor: int,
) -> np.ndarray:
    """A label image of the input field, sampled at the downsampled pixels' centres."""
    lab = np.asarray(labels)
    if lab.ndim != 2 or lab.dtype.kind not in "biu":
        raise ValueError(
            f"`{name}` must be a 2-D integer label image, got {lab.dtype} of shape {lab.shape}"
        )
    if lab.shape != tuple(full):
        raise ValueError(
            f"`{name}` (shape {lab.shape}) must have the shape of the image it labels {tuple(full)}"
        )
    if lab.size and lab.min() < 0:
        raise ValueError(f"`{name}` labels must be >= 0, got {int(lab.min())}")
    half = factor // 2
    rows, cols = shape[0] * factor, shape[1] * factor
    return lab[half:rows:factor, half:cols:factor].astype(np.int32, copy=False)


def _cell_centring(nuclei: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Cell labels relabelled with the id of the nucleus each cell holds (0: no nucleus).

    :func:`crop_cells` then centres each crop on the cell's centroid and labels it with
    the nucleus id.
    """
    both = (nuclei > 0) & (cells > 0)
    if not both.any():
        return np.zeros_like(nuclei)
    pairs, counts = np.unique(np.stack([cells[both], nuclei[both]]), axis=1, return_counts=True)
    # per cell, the nucleus with the largest overlap (ties: the lowest id)
    order = np.lexsort((pairs[1], -counts, pairs[0]))
    first = np.r_[True, pairs[0, order][1:] != pairs[0, order][:-1]]
    cell_ids, nucleus_ids = pairs[0, order][first], pairs[1, order][first]
    lut = np.zeros(int(cells.max()) + 1, dtype=np.int32)
    lut[cell_ids] = nucleus_ids
    return lut[cells]
