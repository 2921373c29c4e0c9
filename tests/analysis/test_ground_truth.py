"""Ground-truth tables: OpenCell annotations, complexes, per-crop labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cyto.analysis import (
    GroundTruth,
    labels_for,
    load_annotations,
    load_complexes,
    load_ground_truth,
)

HEADER = "ensg_id,target_name,annotation_name,annotation_grade\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_annotations_grades_and_single_localization(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "a.csv",
        HEADER + "E1,A,er,3\nE2,B,cytoplasmic,3\nE2,B,nucleoplasm,2\n"
        "E3,C,golgi,2\nE3,C,vesicles,1\nE4,D,chromatin,1\nE5,E,er,3\nE5,E,golgi,3\n",
    )
    assert load_annotations(p) == {"A": "er", "C": "golgi"}
    assert load_annotations(p, min_grade=3) == {"A": "er", "B": "cytoplasmic"}
    assert load_annotations(p, min_grade=1) == {"A": "er", "D": "chromatin"}
    # top grade wins; ties at the top (E) are ambiguous and dropped
    assert load_annotations(p, single_localization=False) == {
        "A": "er",
        "B": "cytoplasmic",
        "C": "golgi",
    }
    assert load_annotations(p, key="ensg_id") == {"E1": "er", "E3": "golgi"}
    merged = load_annotations(p, min_grade=3, families={"er": "secretory", "golgi": "secretory"})
    assert merged["E"] == "secretory"


def test_annotations_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_annotations(tmp_path / "missing.csv")
    bad = write(tmp_path, "b.csv", "target_name,annotation_name\nA,er\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['annotation_grade'\]"):
        load_annotations(bad)
    grade = write(tmp_path, "g.csv", HEADER + "E1,A,er,high\n")
    with pytest.raises(ValueError, match="line 2: annotation_grade"):
        load_annotations(grade)
    with pytest.raises(ValueError, match="`min_grade`"):
        load_annotations(grade, min_grade=4)


def test_real_opencell_annotations(shared_data: Path) -> None:
    path = shared_data / "opencell/annotations/2021-09-29-public-annotations-flat.csv"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    labels = load_annotations(path)
    assert len(labels) == 516
    assert labels["BCAP31"] == "er"
    assert len(set(labels.values())) == 17
    assert len(load_annotations(path, min_grade=3)) == 868


def test_complexes(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "c.csv",
        "protein_id,complex\nA,ribosome\nB,ribosome\nC,ribosome\nD,ost\nE,ost\nE,ribosome\nF,nup\n",
    )
    assert load_complexes(p) == {"A": "ribosome", "B": "ribosome", "C": "ribosome"}
    assert load_complexes(p, min_size=1)["F"] == "nup"
    assert "D" in load_complexes(p, min_size=1)


def test_load_ground_truth_detects_format(tmp_path: Path) -> None:
    ann = write(tmp_path, "ann.csv", HEADER + "E1,A,er,3\n")
    assert load_ground_truth(ann) == {"organelle": {"A": "er"}}
    gt = write(tmp_path, "gt.csv", "protein_id,family,complex\nA,er,\nB,er,c1\nC,golgi,c1\n")
    assert load_ground_truth(gt)["complex"] == {"B": "c1", "C": "c1"}
    cx = write(tmp_path, "cx.csv", "protein_id,complex\nA,c\nB,c\n")
    assert load_ground_truth(cx) == {"complex": {"A": "c", "B": "c"}}
    other = write(tmp_path, "o.csv", "foo,bar\n1,2\n")
    with pytest.raises(ValueError, match="not a known ground-truth table"):
        load_ground_truth(other)


def test_labels_for() -> None:
    ids = np.array([b"NPM1", b"XYZ", b"NPM1"])
    expected = ["nucleolus_gc", None, "nucleolus_gc"]
    assert labels_for(ids, {"NPM1": "nucleolus_gc"}).tolist() == expected
    with pytest.raises(ValueError, match="`protein_ids` must be 1-D"):
        labels_for(np.zeros((2, 2)), {})


def test_ground_truth_object_keeps_what_it_leaves_out_and_why(tmp_path: Path) -> None:
    ann = write(
        tmp_path,
        "ann.csv",
        HEADER + "E1,A,er,3\nE2,B,er,3\nE3,M,nucleoplasm,3\nE3,M,cytoplasmic,2\nE4,W,golgi,1\n",
    )
    cpx = write(tmp_path, "c.csv", "protein_id,complex\nA,ost\nB,ost\nB,nup\nD,ost\nE,ost\nF,nup\n")
    gt = GroundTruth.read(ann, cpx)
    assert gt.levels == {
        "organelle": {"A": "er", "B": "er"},
        "complex": {"A": "ost", "D": "ost", "E": "ost"},
    }
    assert gt.excluded["organelle"] == {
        "M": "2 localizations at grade >= 2 (cytoplasmic, nucleoplasm)",
        "W": "no annotation of grade >= 2",
    }
    assert gt.excluded["complex"] == {
        "B": "in 2 complexes (nup, ost)",
        "F": "complex 'nup' has 1 subunit(s) left, fewer than 2",
    }
    assert gt.family_level == "organelle" and gt.family_of() == {"A": "er", "B": "er"}
    assert gt.labels("complex", ["A", "B", "Z"]).tolist() == ["ost", None, None]
    assert set(gt.crop_labels(["A", "D"], min_classes=2)) == set()  # one class each
    d = gt.to_dict()
    assert d["sources"] == ["ann.csv", "c.csv"]  # names: a moved folder gives the same result
    assert d["levels"]["complex"] == {
        "proteins": 3,
        "classes": 1,
        "excluded": gt.excluded["complex"],
    }
    assert not GroundTruth.read() and bool(gt)
    with pytest.raises(ValueError, match="`level` must be one of"):
        gt.labels("family", ["A"])
