"""Vector quantizers: the :class:`VectorQuantizer` module and its backends.

``_reference.py`` holds the pure-PyTorch backend (chunked ``addmm`` + ``argmin``,
straight-through autograd function), ``_triton.py`` the fused CUDA kernel next to it.
The codebook update (loss-trained or EMA) is an option of the one module
(``update="ema"``), so there is no quantizer registry: the model builds
:class:`VectorQuantizer` directly, and the encoder registry is cyto's only one.
"""

from ._module import BACKENDS, VectorQuantizer, VQOutput

__all__ = ["BACKENDS", "VQOutput", "VectorQuantizer"]
