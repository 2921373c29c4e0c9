"""Identification heads: two-layer perceptrons on flattened representations."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLPHead"]


class MLPHead(nn.Module):
    """Flatten → Linear → ReLU → Dropout → Linear (the paper's fc1 / fc2).

    The input is flattened in (H, W, C) order, which is a free view for channels-last
    tensors.

    Parameters
    ----------
    in_features : int
        ``C * H * W`` of the representation.
    num_classes : int
        Number of logits.
    hidden : int, default 1000
        Hidden units.
    dropout : float, default 0.5
        Dropout after the hidden layer.

    Examples
    --------
    >>> import torch
    >>> head = MLPHead(8 * 4 * 4, 3, hidden=16)
    >>> head(torch.zeros(2, 8, 4, 4)).shape
    torch.Size([2, 3])
    """

    def __init__(
        self, in_features: int, num_classes: int, *, hidden: int = 1000, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1).flatten(1)
        return self.fc2(self.dropout(torch.relu(self.fc1(x))))
