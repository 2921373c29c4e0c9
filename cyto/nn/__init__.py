"""PyTorch layer: encoders, vector quantizers, decoders, heads, model, training, embedding."""

__all__: list[str] = []
