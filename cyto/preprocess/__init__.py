"""From raw z-stacks to normalized, cell-centred crops (NumPy/SciPy/scikit-image only).

Verbs, in pipeline order: :func:`max_projection`, :func:`downsample`,
:func:`segment_nuclei` (with :func:`estimate_nucleus_diameter`),
:func:`signed_distance`, :func:`crop_cells`, :func:`normalize_crops`, and
:func:`preprocess_fov` composing them for one field of view.
"""

from cyto.preprocess._crop import CHANNELS, CellCrops, crop_cells, normalize_crops
from cyto.preprocess._distance import signed_distance
from cyto.preprocess._fov import NORMALIZE_MODES, preprocess_fov
from cyto.preprocess._nuclei import estimate_nucleus_diameter, segment_nuclei
from cyto.preprocess._project import downsample, max_projection

__all__ = [
    "CHANNELS",
    "NORMALIZE_MODES",
    "CellCrops",
    "crop_cells",
    "downsample",
    "estimate_nucleus_diameter",
    "max_projection",
    "normalize_crops",
    "preprocess_fov",
    "segment_nuclei",
    "signed_distance",
]
