"""Vector quantizers: the :class:`VectorQuantizer` module, its backends and a registry.

``_reference.py`` holds the pure-PyTorch backend (chunked ``addmm`` + ``argmin``,
straight-through autograd function), ``_triton.py`` the fused CUDA kernel next to it.
"""

from ._module import BACKENDS, VectorQuantizer, VQOutput
from ._registry import create_quantizer, list_quantizers, register_quantizer

__all__ = [
    "BACKENDS",
    "VQOutput",
    "VectorQuantizer",
    "create_quantizer",
    "list_quantizers",
    "register_quantizer",
]
