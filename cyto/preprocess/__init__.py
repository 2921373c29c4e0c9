"""From raw z-stacks to normalized, cell-centred crops (NumPy/SciPy/scikit-image only).

Verbs, in pipeline order: :func:`max_projection`, :func:`downsample`,
:func:`segment_nuclei` (with :func:`estimate_nucleus_diameter`; scored by
:func:`segmentation_f1`),
:func:`signed_distance`, :func:`crop_cells`, :func:`normalize_crops`, and
:func:`preprocess_fov` composing them for one field of view (nuclei from the
registered segmenters — :func:`register_segmenter` — or from the user's masks).
Readers (:func:`read_stack`, :func:`read_labels`, :func:`read_manifest`,
:func:`list_fovs`, :func:`attach_masks`) and
:func:`preprocess_dataset` turn a whole dataset into one HDF5 crop store.
"""

from cyto.preprocess._batch import BatchReport, preprocess_dataset
from cyto.preprocess._crop import CHANNELS, CellCrops, crop_cells, normalize_crops
from cyto.preprocess._distance import signed_distance
from cyto.preprocess._evaluate import SegmentationScore, segmentation_f1
from cyto.preprocess._fov import NORMALIZE_MODES, preprocess_fov
from cyto.preprocess._nuclei import estimate_nucleus_diameter, segment_nuclei
from cyto.preprocess._project import downsample, max_projection
from cyto.preprocess._readers import (
    MASK_SUFFIXES,
    METADATA_COLUMNS,
    CodecError,
    FovSpec,
    attach_masks,
    fingerprint,
    list_fovs,
    read_labels,
    read_manifest,
    read_stack,
    read_vendor_stack,
)
from cyto.preprocess._segmenters import list_segmenters, register_segmenter, resolve_segmenter
from cyto.preprocess._zarr import list_zarr_fovs, read_plate_map, read_zarr_stack

__all__ = [
    "CHANNELS",
    "MASK_SUFFIXES",
    "METADATA_COLUMNS",
    "NORMALIZE_MODES",
    "BatchReport",
    "CellCrops",
    "CodecError",
    "FovSpec",
    "SegmentationScore",
    "attach_masks",
    "crop_cells",
    "downsample",
    "estimate_nucleus_diameter",
    "fingerprint",
    "list_fovs",
    "list_segmenters",
    "list_zarr_fovs",
    "max_projection",
    "normalize_crops",
    "preprocess_dataset",
    "preprocess_fov",
    "read_labels",
    "read_manifest",
    "read_plate_map",
    "read_stack",
    "read_vendor_stack",
    "read_zarr_stack",
    "register_segmenter",
    "resolve_segmenter",
    "segment_nuclei",
    "segmentation_f1",
    "signed_distance",
]
