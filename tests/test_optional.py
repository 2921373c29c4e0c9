from __future__ import annotations

import pytest

from cyto._optional import require


def test_require_names_the_extra() -> None:
    with pytest.raises(ImportError, match=r"cyto\[plot\]"):
        require("surely_not_a_module_xyz", "plot", purpose="figures")


def test_require_returns_module() -> None:
    assert require("math", "core").sqrt(4.0) == 2.0
