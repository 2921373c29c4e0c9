"""Ground-truth tables: OpenCell localization annotations and protein complexes."""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["GroundTruth", "labels_for", "load_annotations", "load_complexes", "load_ground_truth"]

_ANNOTATION_COLUMNS = ("target_name", "annotation_name", "annotation_grade")


def _read_rows(path: str | os.PathLike, required: Iterable[str]) -> list[dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth table not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise ValueError(f"`{path.name}` lacks column(s) {missing}; its header is {header}")
        reader.fieldnames = header
        return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]


def load_annotations(
    path: str | os.PathLike,
    *,
    min_grade: int = 2,
    single_localization: bool = True,
    key: str = "target_name",
    families: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Read an OpenCell localization annotation table into ``{protein: localization}``.

    The table has one row per (protein, localization) with columns ``ensg_id``,
    ``target_name``, ``annotation_name`` and ``annotation_grade`` (the public OpenCell
    export, e.g. ``2021-09-29-public-annotations-flat.csv``).

    How grades are treated: OpenCell grades each annotation 3 (prominent), 2 (clear but
    less prominent) or 1 (weak or uncertain). Annotations graded below ``min_grade`` are
    ignored. With ``single_localization=True`` (the paper's organelle-level ground truth:
    proteins with a unique localization) a protein is kept only when exactly **one**
    annotation remains; proteins seen at several places are dropped. With
    ``single_localization=False`` each protein gets its highest-graded localization, and
    proteins whose top grade is shared by several localizations are dropped as ambiguous.

    Parameters
    ----------
    path : path-like
        The CSV file.
    min_grade : int, default 2
        Lowest grade that counts as a localization (1–3). On the 2021-09-29 export,
        ``min_grade=2`` keeps 516 of 1,310 proteins and ``min_grade=3`` keeps 868 (those
        with a single *prominent* localization, possibly with weaker ones).
    single_localization : bool, default True
        Keep only proteins with exactly one localization (see above).
    key : {"target_name", "ensg_id"}, default "target_name"
        Column used as the protein id (cyto uses the gene name as ``protein_id``).
    families : mapping of str to str, optional
        Renames localizations into coarser families (e.g. ``{"nucleolus_gc": "nucleolus",
        "nucleolus_fc_dfc": "nucleolus"}``), applied before the single-localization rule;
        names not in the mapping are kept as they are.

    Returns
    -------
    labels : dict of str to str
        Protein id → localization, sorted by protein id.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If a required column is missing, a grade is not an integer, or an option is out
        of range.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "annotations.csv"
    >>> _ = p.write_text(
    ...     "ensg_id,target_name,annotation_name,annotation_grade\\n"
    ...     "E1,BCAP31,er,3\\n"
    ...     "E2,AAMP,cytoplasmic,3\\nE2,AAMP,nucleoplasm,2\\n"
    ...     "E3,NPM1,nucleolus_gc,3\\nE3,NPM1,nucleoplasm,1\\n")
    >>> load_annotations(p)
    {'BCAP31': 'er', 'NPM1': 'nucleolus_gc'}
    >>> load_annotations(p, min_grade=3)
    {'AAMP': 'cytoplasmic', 'BCAP31': 'er', 'NPM1': 'nucleolus_gc'}
    """
    return _read_annotations(
        path,
        min_grade=min_grade,
        single_localization=single_localization,
        key=key,
        families=families,
    )[0]


def _read_annotations(
    path: str | os.PathLike,
    *,
    min_grade: int = 2,
    single_localization: bool = True,
    key: str = "target_name",
    families: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """:func:`load_annotations`, and the proteins it leaves out with the reason."""
    if key not in ("target_name", "ensg_id"):
        raise ValueError(f"`key` must be 'target_name' or 'ensg_id', got {key!r}")
    if min_grade not in (1, 2, 3):
        raise ValueError(f"`min_grade` must be 1, 2 or 3, got {min_grade!r}")
    per_protein = _annotation_grades(path, key, families)
    out: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for protein in sorted(per_protein):
        locs = {n: g for n, g in per_protein[protein].items() if g >= min_grade}
        if not locs:
            dropped[protein] = f"no annotation of grade >= {min_grade}"
            continue
        top = max(locs.values())
        best = (
            sorted(locs) if single_localization else sorted(n for n, g in locs.items() if g == top)
        )
        if len(best) == 1:
            out[protein] = best[0]
        else:
            what = f"grade >= {min_grade}" if single_localization else f"top grade {top}"
            dropped[protein] = f"{len(best)} localizations at {what} ({', '.join(best)})"
    return out, dropped


def _annotation_grades(
    path: str | os.PathLike, key: str, families: Mapping[str, str] | None
) -> dict[str, dict[str, int]]:
    """``{protein: {localization: highest grade}}`` from an OpenCell annotation table."""
    rows = _read_rows(path, (*_ANNOTATION_COLUMNS, key))
    per_protein: dict[str, dict[str, int]] = defaultdict(dict)
    for line, row in enumerate(rows, start=2):
        try:
            grade = int(float(row["annotation_grade"]))
        except ValueError:
            raise ValueError(
                f"`{Path(path).name}` line {line}: annotation_grade must be an integer, "
                f"got {row['annotation_grade']!r}"
            ) from None
        protein, name = row[key], row["annotation_name"]
        if not protein or not name:
            continue
        if families is not None:
            name = families.get(name, name)
        locs = per_protein[protein]
        locs[name] = max(grade, locs.get(name, 0))
    return per_protein


def load_complexes(path: str | os.PathLike, *, min_size: int = 2) -> dict[str, str]:
    """Read a protein-complex table (``protein_id,complex``) into ``{protein: complex}``.

    Follows the paper's selection of CORUM complexes: a protein listed in several
    complexes is dropped (no overlapping subunits), and complexes with fewer than
    ``min_size`` remaining subunits are dropped.

    Parameters
    ----------
    path : path-like
        CSV with columns ``protein_id`` and ``complex`` (extra columns are ignored).
    min_size : int, default 2
        Smallest number of subunits for a complex to be kept.

    Returns
    -------
    labels : dict of str to str
        Protein id → complex name, sorted by protein id.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If a required column is missing or ``min_size < 1``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "complexes.csv"
    >>> _ = p.write_text("protein_id,complex\\nA,ribosome\\nB,ribosome\\nC,proteasome\\n"
    ...                  "D,proteasome\\nD,ribosome\\nE,nup\\n")
    >>> load_complexes(p)
    {'A': 'ribosome', 'B': 'ribosome'}
    """
    return _read_complexes(path, min_size=min_size)[0]


def _read_complexes(
    path: str | os.PathLike, *, min_size: int = 2
) -> tuple[dict[str, str], dict[str, str]]:
    """:func:`load_complexes`, and the proteins it leaves out with the reason."""
    if int(min_size) < 1:
        raise ValueError(f"`min_size` must be >= 1, got {min_size!r}")
    rows = _read_rows(path, ("protein_id", "complex"))
    memberships: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row["protein_id"] and row["complex"]:
            memberships[row["protein_id"]].add(row["complex"])
    dropped = {
        p: f"in {len(c)} complexes ({', '.join(sorted(c))})"
        for p, c in memberships.items()
        if len(c) > 1
    }
    unique = {p: next(iter(c)) for p, c in memberships.items() if len(c) == 1}
    sizes: dict[str, int] = defaultdict(int)
    for c in unique.values():
        sizes[c] += 1
    for p, c in unique.items():
        if sizes[c] < min_size:
            dropped[p] = f"complex {c!r} has {sizes[c]} subunit(s) left, fewer than {min_size}"
    kept = {p: unique[p] for p in sorted(unique) if sizes[unique[p]] >= min_size}
    return kept, dict(sorted(dropped.items()))


def load_ground_truth(path: str | os.PathLike, **kwargs: Any) -> dict[str, dict[str, str]]:
    """Read any cyto ground-truth table into ``{level: {protein: label}}``.

    The format is recognised from the header:

    - ``ensg_id,target_name,annotation_name,annotation_grade`` (OpenCell annotations) →
      ``{"organelle": ...}`` via :func:`load_annotations` (``kwargs`` passed on);
    - ``protein_id,family[,complex]`` (``ground_truth.csv`` written by ``cyto synth``) →
      ``{"organelle": ..., "complex": ...}``; empty cells are unlabelled;
    - ``protein_id,complex`` → ``{"complex": ...}`` via :func:`load_complexes`.

    Parameters
    ----------
    path : path-like
        The CSV file.
    **kwargs
        Options of :func:`load_annotations` for annotation tables.

    Returns
    -------
    levels : dict of str to dict of str to str

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the header matches none of the formats.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "ground_truth.csv"
    >>> _ = p.write_text("protein_id,family,complex\\nA,er,\\nB,er,c1\\nC,golgi,c1\\n")
    >>> load_ground_truth(p)
    {'organelle': {'A': 'er', 'B': 'er', 'C': 'golgi'}, 'complex': {'B': 'c1', 'C': 'c1'}}
    """
    return _read_levels(path, **kwargs)[0]


def _read_levels(
    path: str | os.PathLike, **kwargs: Any
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """:func:`load_ground_truth`, and per level the proteins left out with the reason."""
    rows = _read_rows(path, ())
    header = set(rows[0]) if rows else set()
    if not rows:
        with open(path, encoding="utf-8-sig") as fh:
            header = {h.strip() for h in fh.readline().split(",")}
    if set(_ANNOTATION_COLUMNS) <= header:
        kept, dropped = _read_annotations(path, **kwargs)
        return {"organelle": kept}, {"organelle": dropped}
    if {"protein_id", "family"} <= header:
        return _family_levels(rows, "complex" in header), {}
    if {"protein_id", "complex"} <= header:
        kept, dropped = _read_complexes(path)
        return {"complex": kept}, {"complex": dropped}
    raise ValueError(
        f"`{Path(path).name}` is not a known ground-truth table; expected the OpenCell "
        f"annotation columns {list(_ANNOTATION_COLUMNS)}, or protein_id,family[,complex], "
        f"or protein_id,complex; got {sorted(header)}"
    )


def _family_levels(rows: list[dict[str, str]], with_complex: bool) -> dict[str, dict[str, str]]:
    """Levels of a ``protein_id,family[,complex]`` table (empty cells: unlabelled)."""
    levels: dict[str, dict[str, str]] = {"organelle": {}}
    if with_complex:
        levels["complex"] = {}
    for row in rows:
        p = row["protein_id"]
        if p and row["family"]:
            levels["organelle"][p] = row["family"]
        if with_complex and p and row["complex"]:
            levels["complex"][p] = row["complex"]
    return levels


def labels_for(protein_ids: Any, mapping: Mapping[str, str]) -> np.ndarray:
    """Label each crop by its protein id; proteins without a label get ``None``.

    Parameters
    ----------
    protein_ids : (n,) array_like of str
        Protein id per crop (e.g. the ``protein_id`` dataset of an embeddings file;
        bytes are decoded as UTF-8).
    mapping : mapping of str to str
        Protein id → label, e.g. from :func:`load_annotations`.

    Returns
    -------
    labels : (n,) object ndarray
        Labels, ``None`` for unlabelled crops (ignored by
        :func:`~cyto.analysis.clustering_score`).

    Examples
    --------
    >>> labels_for(["NPM1", "NPM1", "XYZ"], {"NPM1": "nucleolus_gc"}).tolist()
    ['nucleolus_gc', 'nucleolus_gc', None]
    """
    ids = np.asarray(protein_ids)
    if ids.ndim != 1:
        raise ValueError(f"`protein_ids` must be 1-D, got shape {ids.shape}")
    uniq, inverse = np.unique(ids, return_inverse=True)
    lut = np.empty(uniq.shape[0], dtype=object)
    for i, p in enumerate(uniq):
        name = p.decode("utf-8") if isinstance(p, bytes) else str(p)
        lut[i] = mapping.get(name)
    return lut[inverse.ravel()]


@dataclass(frozen=True)
class GroundTruth:
    """Known labels per level, and the proteins left out of each level with the reason.

    The one ground truth every evaluation step uses (Γ, k-NN accuracy, hidden-protein
    localization, baselines), so that what is excluded is decided once, when the tables
    are read — e.g. a protein annotated at two places is not a single-localization
    protein and has no organelle label anywhere (the paper's rule).

    Attributes
    ----------
    levels : dict of str to dict of str to str
        ``levels[level][protein] = label`` (e.g. levels ``"organelle"`` and ``"complex"``).
    excluded : dict of str to dict of str to str
        ``excluded[level][protein] = reason`` for proteins a table names but the level
        leaves out.
    sources : tuple of str
        The tables read.

    Examples
    --------
    >>> gt = GroundTruth({"organelle": {"A": "er", "B": "golgi"}})
    >>> gt.labels("organelle", ["A", "C"]).tolist()
    ['er', None]
    >>> gt.family_level
    'organelle'
    """

    levels: dict[str, dict[str, str]] = field(default_factory=dict)
    excluded: dict[str, dict[str, str]] = field(default_factory=dict)
    sources: tuple[str, ...] = ()

    @classmethod
    def read(
        cls,
        ground_truth: str | os.PathLike | None = None,
        complexes: str | os.PathLike | None = None,
        *,
        min_grade: int = 2,
    ) -> GroundTruth:
        """Read a ground-truth table and/or a complex table.

        Parameters
        ----------
        ground_truth : path-like, optional
            Any table :func:`load_ground_truth` reads.
        complexes : path-like, optional
            A ``protein_id,complex`` table; replaces a complex level of ``ground_truth``.
        min_grade : int, default 2
            Annotation grade threshold for OpenCell annotation tables.

        Returns
        -------
        ground_truth : GroundTruth
            Empty when neither table is given.
        """
        levels: dict[str, dict[str, str]] = {}
        excluded: dict[str, dict[str, str]] = {}
        if ground_truth is not None:
            lv, ex = _read_levels(ground_truth, min_grade=min_grade)
            levels.update(lv)
            excluded.update(ex)
        if complexes is not None:
            levels["complex"], excluded["complex"] = _read_complexes(complexes)
        sources = tuple(str(p) for p in (ground_truth, complexes) if p is not None)
        return cls(levels, excluded, sources)

    def __bool__(self) -> bool:
        return any(self.levels.values())

    @property
    def family_level(self) -> str | None:
        """The level atlases are coloured by: ``"organelle"`` if present, else the first."""
        return "organelle" if "organelle" in self.levels else next(iter(self.levels), None)

    def family_of(self) -> dict[str, str]:
        """``{protein: label}`` at :attr:`family_level` (empty without one)."""
        return dict(self.levels.get(self.family_level, {})) if self.family_level else {}

    def labels(self, level: str, protein_ids: Any) -> np.ndarray:
        """Label per crop at ``level`` (None where unlabelled); see :func:`labels_for`."""
        if level not in self.levels:
            raise ValueError(f"`level` must be one of {list(self.levels)}, got {level!r}")
        return labels_for(protein_ids, self.levels[level])

    def check_covers(self, protein_ids: Any, what: str = "the atlas") -> None:
        """Refuse a ground truth that labels fewer than two of ``protein_ids``' proteins.

        With fewer, every score is undefined (a card of dashes); the message says how
        many match and, where ids differ only in case, that ids are compared exactly.

        Parameters
        ----------
        protein_ids : array of str
            The proteins scored (one per crop or per protein).
        what : str
            What they are, for the message.

        Raises
        ------
        ValueError
            Naming the tables, the proteins and the ones matched.
        """
        if not self.levels:
            return
        proteins = sorted({str(p) for p in np.asarray(protein_ids).tolist()})
        known = set().union(*(set(m) for m in self.levels.values()))
        matched = [p for p in proteins if p in known]
        if len(matched) >= 2:
            return
        given = ", ".join(Path(s).name for s in self.sources) or "the ground truth"
        folded = {k.casefold() for k in known}
        case = [p for p in proteins if p not in known and p.casefold() in folded]
        hint = (
            f"; {len(case)} more match when case is ignored (e.g. {case[0]!r}): protein ids "
            "are compared exactly, so fix their case in one of the files"
            if case
            else "; check that its protein ids match the crop store's (gene names for "
            "OpenCell tables)"
        )
        raise ValueError(
            f"the ground truth ({given}) labels {len(matched)} of the {len(proteins)} proteins "
            f"of {what} (e.g. {', '.join(proteins[:3])}); scores need at least 2{hint}"
        )

    def crop_labels(self, protein_ids: Any, *, min_classes: int = 1) -> dict[str, np.ndarray]:
        """Labels per crop for every level with at least ``min_classes`` classes among them."""
        out = {}
        for level in self.levels:
            lab = self.labels(level, protein_ids)
            if len({v for v in lab if v is not None}) >= min_classes:
                out[level] = lab
        return out

    def to_dict(self) -> dict[str, Any]:
        """Sizes, classes and exclusions per level, and the tables' file names."""
        return {
            # file names only: a result must not change when its folder moves
            "sources": [Path(s).name for s in self.sources],
            "levels": {
                lv: {
                    "proteins": len(m),
                    "classes": len(set(m.values())),
                    "excluded": dict(self.excluded.get(lv, {})),
                }
                for lv, m in self.levels.items()
            },
        }


#: Column names of ground-truth levels in tables for other tools (AnnData obs, explorer).
LEVEL_COLUMNS = {"organelle": "family"}


def anndata_labels(gt: GroundTruth, protein_ids: Any) -> dict[str, np.ndarray]:
    """Per-crop ground-truth labels as ``obs`` columns: ``family`` (the organelle level)
    and ``complex`` (None where a protein is not annotated or was left out).

    Parameters
    ----------
    gt : GroundTruth
    protein_ids : (n,) array

    Returns
    -------
    columns : dict of str to (n,) object array
        Only the levels that label at least one crop.
    """
    out = {}
    for level in gt.levels:
        labels = gt.labels(level, protein_ids)
        if any(v is not None for v in labels):
            out[LEVEL_COLUMNS.get(level, level)] = labels
    return out
