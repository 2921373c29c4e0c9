"""PyTorch layer: encoders, vector quantizers, decoders, heads, model, training, embedding."""

from .quantize import (
    VectorQuantizer,
    VQOutput,
    create_quantizer,
    list_quantizers,
    register_quantizer,
)

__all__: list[str] = [
    "VQOutput",
    "VectorQuantizer",
    "create_quantizer",
    "list_quantizers",
    "register_quantizer",
]
