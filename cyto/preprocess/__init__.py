"""From raw z-stacks to normalized, cell-centred crops (NumPy/SciPy/scikit-image only).

Verbs, in pipeline order: :func:`max_projection`, :func:`downsample`,
:func:`segment_nuclei` (with :func:`estimate_nucleus_diameter`; scored by
:func:`segmentation_f1`),
:func:`signed_distance`, :func:`crop_cells`, :func:`normalize_crops`, and
:func:`preprocess_fov` composing them for one field of view. Readers
(:func:`read_stack`, :func:`read_manifest`, :func:`list_fovs`) and
:func:`preprocess_dataset` turn a whole dataset into one HDF5 crop store.
"""

from cyto.preprocess._batch import BatchReport, preprocess_dataset
from cyto.preprocess._crop import CHANNELS, CellCrops, crop_cells, normalize_crops
from cyto.preprocess._distance import signed_distance
from cyto.preprocess._evaluate import SegmentationScore, segmentation_f1
from cyto.preprocess._fov import NORMALIZE_MODES, preprocess_fov
from cyto.preprocess._nuclei import estimate_nucleus_diameter, segment_nuclei
from cyto.preprocess._project import downsample, max_projection
from cyto.preprocess._readers import FovSpec, fingerprint, list_fovs, read_manifest, read_stack

__all__ = [
    "CHANNELS",
    "NORMALIZE_MODES",
    "BatchReport",
    "CellCrops",
    "FovSpec",
    "SegmentationScore",
    "crop_cells",
    "downsample",
    "estimate_nucleus_diameter",
    "fingerprint",
    "list_fovs",
    "max_projection",
    "normalize_crops",
    "preprocess_dataset",
    "preprocess_fov",
    "read_manifest",
    "read_stack",
    "segment_nuclei",
    "segmentation_f1",
    "signed_distance",
]
