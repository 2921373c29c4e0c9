"""Every bad input of tools/bad_inputs.py gets its exit code and its sentence (no traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_inputs import CASES, run_case

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.command}: {c.what}")
def test_bad_input_gets_a_sentence(case, ws):
    code, message = run_case(case, ws)
    assert code == case.code, message
    assert case.message in message
    assert "Traceback" not in message


def test_the_table_in_the_docs_lists_every_case():
    table = (Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md").read_text()
    for case in CASES:
        assert f"| {case.what} |" in table, f"rerun python tools/bad_inputs.py ({case.what})"
