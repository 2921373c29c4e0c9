"""Phenotypic activity and consistency: the JUMP metrics, checked against copairs."""

from __future__ import annotations

import numpy as np
import pytest

from cyto.analysis import phenotypic_activity, phenotypic_consistency


def _screen(seed: int = 0):
    """24 control wells, 6 perturbations x 4 wells: 3 active (shifted), 3 inactive."""
    rng = np.random.default_rng(seed)
    pert = ["DMSO"] * 24 + [f"cmp{k}" for k in range(6) for _ in range(4)]
    X = rng.normal(size=(len(pert), 16))
    for k in range(3):  # cmp0..cmp2 act: their wells move along their MoA's direction
        X[24 + 4 * k : 28 + 4 * k, k % 2] += 3.0
    moa = {"cmp0": "tubulin", "cmp1": "hdac", "cmp2": "tubulin", "cmp3": "hdac",
           "cmp4": "tubulin", "cmp5": "hdac"}  # fmt: skip
    return X, np.array(pert), moa


def test_active_perturbations_are_found_and_inactive_ones_not() -> None:
    X, pert, _ = _screen()
    out = phenotypic_activity(X, pert, control="DMSO", null_size=2000)
    q = {g["label"]: g["q_value"] for g in out["groups"]}
    assert max(q["cmp0"], q["cmp1"], q["cmp2"]) < 0.05
    assert min(q["cmp3"], q["cmp4"], q["cmp5"]) > 0.05
    assert out["fraction_significant"] == pytest.approx(0.5)
    assert out["n_controls"] == 24 and out["n_perturbations"] == 6
    with pytest.raises(ValueError, match="no control well"):
        phenotypic_activity(X, pert, control="PBS")


def test_consistency_retrieves_perturbations_of_one_moa() -> None:
    X, pert, moa = _screen()
    out = phenotypic_consistency(X, pert, moa, control="DMSO", null_size=2000)
    assert out["n_perturbations"] == 6
    assert {g["label"] for g in out["groups"]} == {"tubulin", "hdac"}
    with pytest.raises(ValueError, match="no MoA"):
        phenotypic_consistency(X, pert, {"cmp0": "a", "cmp1": "b"})


def test_average_precisions_match_copairs() -> None:
    pd = pytest.importorskip("pandas")
    cmap = pytest.importorskip("copairs.map")
    X, pert, _ = _screen(seed=3)
    meta = pd.DataFrame({"pert": pert})
    # copairs' recipe for activity: controls get a unique reference index, so they are
    # never positives and the only negatives
    meta["ref"] = np.where(pert == "DMSO", np.arange(len(pert)), -1)
    ap = cmap.average_precision(
        meta, X, pos_sameby=["pert", "ref"], pos_diffby=[], neg_sameby=[],
        neg_diffby=["pert", "ref"], progress_bar=False,
    )  # fmt: skip
    ap = ap[ap["pert"] != "DMSO"].dropna(subset=["average_precision"])
    theirs = ap.groupby("pert")["average_precision"].mean()
    ours = phenotypic_activity(X, pert, control="DMSO", null_size=100)
    mine = {g["label"]: g["map"] for g in ours["groups"]}
    assert set(mine) == set(theirs.index)
    for label, value in theirs.items():
        assert mine[label] == pytest.approx(value, abs=1e-9), label
