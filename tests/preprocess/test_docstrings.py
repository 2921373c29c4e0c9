"""The Examples sections of the public preprocessing functions run and are right."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "cyto.preprocess._project",
    "cyto.preprocess._nuclei",
    "cyto.preprocess._distance",
    "cyto.preprocess._evaluate",
    "cyto.preprocess._crop",
    "cyto.preprocess._fov",
    "cyto.preprocess._readers",
    "cyto.preprocess._batch",
    "cyto.data._store",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
