"""Evaluation: k-NN family accuracy, hidden-protein localization, mean ± s.e.m. and the one
:func:`evaluate` over a :class:`GroundTruth`."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cyto.analysis import (
    FeatureSpectra,
    GroundTruth,
    choose_hidden,
    evaluate,
    knn_family_accuracy,
    localize_hidden,
    mean_sem,
)


def test_knn_family_accuracy_separates_clusters(rng: np.random.Generator) -> None:
    centres = np.array([[10.0, 10.0], [20.0, 0.0], [0.0, 20.0]])
    labels = np.repeat(["a", "b", "c"], 20)
    x = centres[np.repeat(np.arange(3), 20)] + rng.normal(size=(60, 2))
    q = centres[np.repeat(np.arange(3), 20)] + rng.normal(size=(60, 2))
    assert knn_family_accuracy(x, labels, q, labels, n_neighbors=5) == 1.0
    assert knn_family_accuracy(x, labels, q, labels, n_neighbors=5, metric="cosine") > 0.9
    shuffled = rng.permutation(labels)
    assert knn_family_accuracy(x, shuffled, q, labels, n_neighbors=5) < 0.7


def test_knn_family_accuracy_rejects_mismatched_input() -> None:
    with pytest.raises(ValueError, match="same width"):
        knn_family_accuracy(np.zeros((4, 2)), list("aabb"), np.zeros((4, 3)), list("aabb"))
    with pytest.raises(ValueError, match="`metric` must be"):
        knn_family_accuracy(
            np.zeros((4, 2)), list("aabb"), np.zeros((4, 2)), list("aabb"), metric="l1"
        )
    with pytest.raises(ValueError, match="one label per row"):
        knn_family_accuracy(np.zeros((4, 2)), list("aab"), np.zeros((4, 2)), list("aabb"))


def test_localize_hidden_uses_only_the_other_proteins(rng: np.random.Generator) -> None:
    fam_profiles = {"er": np.r_[np.ones(5), np.zeros(5)], "golgi": np.r_[np.zeros(5), np.ones(5)]}
    proteins = ["p0", "p1", "p2", "p3", "p4", "p5"]
    families = {"p0": "er", "p1": "er", "p2": "er", "p3": "golgi", "p4": "golgi", "p5": "golgi"}
    spectra = np.stack([fam_profiles[families[p]] + 0.1 * rng.random(10) for p in proteins])
    rows = localize_hidden(spectra, proteins, families, hidden=["p0", "p5"])
    assert [r["predicted"] for r in rows] == ["er", "golgi"]
    assert all(r["hit"] for r in rows)
    with pytest.raises(ValueError, match="no spectrum"):
        localize_hidden(spectra, proteins, families, hidden=["zz"])


def test_mean_sem_is_one_definition_with_nan_for_one_value() -> None:
    from cyto.analysis import ScoreTable

    r = mean_sem([1.0, 2.0, 6.0])
    assert r["mean"] == 3.0 and r["sem"] == pytest.approx(np.std([1, 2, 6], ddof=1) / math.sqrt(3))
    t = ScoreTable.from_scores({"v": {"lvl": [1.0, 2.0, 6.0]}, "w": {"lvl": [4.0]}})
    assert t.sem[0, 0] == pytest.approx(r["sem"])
    assert math.isnan(mean_sem([4.0])["sem"]) and math.isnan(t.sem[1, 0])
    with pytest.raises(ValueError, match="at least one"):
        mean_sem([])


def _clustered(rng: np.random.Generator, n_per: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Encodings of 6 proteins in 3 well-separated families (2 proteins each)."""
    proteins = np.repeat([f"P{i}" for i in range(6)], n_per)
    centre = np.repeat(np.arange(6) // 2, n_per)
    x = rng.normal(size=(proteins.size, 8)) + 12.0 * np.eye(8)[centre]
    return x.astype(np.float32), proteins


def _gt() -> GroundTruth:
    fam = {f"P{i}": ["er", "golgi", "nucleolus"][i // 2] for i in range(6)}
    return GroundTruth(
        {"organelle": fam, "complex": {"P0": "c1", "P1": "c1"}},
        excluded={"organelle": {"P9": "2 localizations at grade >= 2 (a, b)"}},
    )


def test_evaluate_measures_every_step_once(rng: np.random.Generator) -> None:
    x, proteins = _clustered(rng)
    ref_x, ref_p = _clustered(rng)
    spectra = FeatureSpectra(
        groups=np.array([f"P{i}" for i in range(6)]),
        spectra=np.eye(3)[np.arange(6) // 2].repeat(4, axis=1) + 0.05 * rng.random((6, 12)),
        n_images=np.full(6, 30),
    )
    ev = evaluate(
        x,
        proteins,
        _gt(),
        reference=(ref_x, ref_p),
        spectra=spectra,
        umap_seeds=(0, 1),
        umap_options={"backend": "umap"},
    )
    assert set(ev.scores) == {"organelle"}  # one complex only: not scored, and said so
    assert any("'complex'" in n for n in ev.notes)
    assert len(ev.scores["organelle"]["values"]) == 2 and len(ev.umaps) == 2
    assert ev.scores["organelle"]["mean"] > 2.0  # well-separated families
    assert ev.knn == {"euclidean": 1.0, "cosine": 1.0}
    assert len(ev.hidden) == 3 and ev.hidden_hit_rate == 1.0
    d = ev.to_dict()
    assert d["ground_truth"]["levels"]["organelle"]["excluded"] == {
        "P9": "2 localizations at grade >= 2 (a, b)"
    }
    assert "umaps" not in d and d["umap"]["seeds"] == [0, 1]


def test_evaluate_scores_match_shuffled_labels_chance(rng: np.random.Generator) -> None:
    x, proteins = _clustered(rng)
    shuffled = GroundTruth(
        {"organelle": dict(zip([f"P{i}" for i in range(6)], ["er", "golgi", "nucleolus"] * 2))}
    )
    real = evaluate(x, proteins, _gt(), umap_options={"backend": "umap"})
    chance = evaluate(x, proteins, shuffled, umap_options={"backend": "umap"})
    assert real.scores["organelle"]["mean"] > 2 * chance.scores["organelle"]["mean"]


def test_choose_hidden_needs_two_proteins_per_family() -> None:
    fams = {"A": "er", "B": "er", "C": "golgi", "D": "nucleolus", "E": "nucleolus"}
    hidden = choose_hidden(["A", "B", "C", "D", "E", "X"], fams, seed=3)
    assert len(hidden) == 2 and hidden[0] in "AB" and hidden[1] in "DE"
    assert hidden == choose_hidden(["A", "B", "C", "D", "E", "X"], fams, seed=3)


def test_a_protein_with_two_localizations_is_left_out_everywhere(tmp_path, rng) -> None:
    """The 'mixed' rule is decided once, by the ground truth: no Γ class, no kNN class,
    never hidden, no consensus spectrum (the defect #17 reported: counted as a hit)."""
    table = tmp_path / "annotations.csv"
    rows = ["ensg_id,target_name,annotation_name,annotation_grade"]
    rows += [f"E{i},P{i},{['er', 'golgi', 'nucleolus'][i // 2]},3" for i in range(6)]
    rows += ["E6,MIX,nucleoplasm,3", "E6,MIX,cytoplasmic,3"]
    table.write_text("\n".join(rows) + "\n")
    gt = GroundTruth.read(table)
    assert "MIX" not in gt.levels["organelle"]
    assert gt.excluded["organelle"]["MIX"].startswith("2 localizations")
    spectra = FeatureSpectra(
        groups=np.array([*(f"P{i}" for i in range(6)), "MIX"]),
        spectra=rng.random((7, 12)),
        n_images=np.full(7, 30),
    )
    x, proteins = _clustered(rng)
    ev = evaluate(x, proteins, gt, spectra=spectra, umap_options={"backend": "umap"})
    assert all(r["protein"] != "MIX" and "MIX" not in r["top3"] for r in ev.hidden)
    assert {r["true"] for r in ev.hidden} <= {"er", "golgi", "nucleolus"}


def test_a_small_atlas_lowers_the_umap_neighbours_and_says_so(rng: np.random.Generator) -> None:
    x = rng.normal(size=(12, 4)).astype(np.float32)
    proteins = np.repeat([f"P{i}" for i in range(6)], 2)
    ev = evaluate(x, proteins, _gt(), umap_seeds=(0,), umap_options={"backend": "umap"})
    assert "UMAP n_neighbors lowered from 15 to 11: the atlas has only 12 crops" in ev.notes
    assert ev.umap["n_neighbors"] == 11 and ev.umaps[0].shape == (12, 2)
