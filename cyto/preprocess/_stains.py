"""Manifests that name their stains: one column per channel, or one row per channel.

A Cell Painting plate exported by an imager (or by CellProfiler's ``LoadData``) gives
each field as one image per stain. cyto reads two layouts:

- **wide**: one row per field, one column per stain holding its image path
  (``DNA,ER,RNA,AGP,Mito,protein_id,fov_id,...``), as ``LoadData`` CSVs do;
- **long**: one row per image, ``path,channel,fov_id,protein_id`` (and optionally
  ``channel_index``, the channel of a multi-channel file), rows of a field together or
  not.

Both give :class:`~cyto.preprocess._spec.FovSpec` objects whose ``stains`` name every
image; ``mask_path``, ``cell_mask_path``, ``axes`` and the metadata columns (plate,
well, ``Metadata_*``) mean what they mean in any manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cyto.preprocess._spec import FovSpec, _relative, _stem, is_metadata_column

__all__ = ["stain_specs"]

#: Columns of the long layout (one row per image).
_LONG = ("path", "channel")


def stain_specs(
    rows: list[dict[str, str]], fields: list[str], stains: Sequence[str], path: Path
) -> list[FovSpec]:
    """The fields of a manifest that names the ``stains`` (wide or long layout).

    Parameters
    ----------
    rows : list of dict
        The manifest's rows (stripped keys).
    fields : list of str
        Its columns.
    stains : sequence of str
        The channels to read (``--channels`` without ``distance``).
    path : Path
        The manifest (named in errors; relative paths are relative to its folder).

    Returns
    -------
    list of FovSpec

    Raises
    ------
    ValueError
        If a stain is neither a column nor a value of the ``channel`` column (the message
        names the manifest, the column and the channels found), a field lacks a stain or
        names it twice, or a value is malformed.
    """
    if "protein_id" not in fields:
        raise ValueError(
            f"{path}: manifest lacks column 'protein_id' (the label of every field: protein, "
            f"perturbation, well...); found {fields}"
        )
    if all(s in fields for s in stains):
        return [_wide_spec(row, i, stains, path) for i, row in enumerate(rows, start=2)]
    if all(c in fields for c in _LONG):
        return _long_specs(rows, fields, stains, path)
    missing = [s for s in stains if s not in fields]
    raise ValueError(
        f"{path}: --channels names {list(stains)} but the manifest has no column {missing} "
        f"(its columns: {fields}); name the stains by their columns (wide layout: one "
        "column per stain holding its image path) or give path,channel columns (long "
        "layout: one row per image)"
    )


def _file(value: str, path: Path, where: str, what: str) -> Path:
    file = _relative(value, path)
    if file is None:
        raise ValueError(f"{where}: empty {what}")
    return file


def _field_spec(
    row: dict[str, str], stains: tuple[tuple[str, Path, int], ...], fov: str, path: Path
) -> FovSpec:
    """A field of named stains; the first stain's file stands for the field."""
    return FovSpec(
        path=stains[0][1],
        protein_id=row["protein_id"].strip(),
        fov_id=fov,
        axes=row.get("axes", "").strip() or None,
        mask_path=_relative(row.get("mask_path", ""), path),
        cell_mask_path=_relative(row.get("cell_mask_path", ""), path),
        metadata=tuple((k, row[k].strip()) for k in row if is_metadata_column(k)),
        stains=stains,
    )


def _wide_spec(row: dict[str, str], line: int, stains: Sequence[str], path: Path) -> FovSpec:
    where = f"{path}, line {line}"
    if not row["protein_id"].strip():
        raise ValueError(f"{where}: empty protein_id")
    named = tuple((s, _file(row[s], path, where, f"column {s!r}"), 0) for s in stains)
    fov = row.get("fov_id", "").strip() or _stem(named[0][1])
    return _field_spec(row, named, fov, path)


def _long_specs(
    rows: list[dict[str, str]], fields: list[str], stains: Sequence[str], path: Path
) -> list[FovSpec]:
    """Rows grouped into fields by ``fov_id``; every field has every stain once."""
    if "fov_id" not in fields:
        raise ValueError(f"{path}: a manifest of one row per image needs a fov_id column")
    by_fov: dict[str, tuple[dict[str, str], dict[str, tuple[Path, int]]]] = {}
    found: set[str] = set()
    for line, row in enumerate(rows, start=2):
        where = f"{path}, line {line}"
        fov, channel = row["fov_id"].strip(), row["channel"].strip()
        if not fov or not row["protein_id"].strip():
            raise ValueError(f"{where}: empty fov_id or protein_id")
        found.add(channel)
        first, images = by_fov.setdefault(fov, (row, {}))
        if channel in images:
            raise ValueError(f"{where}: field {fov!r} names channel {channel!r} twice")
        if row["protein_id"].strip() != first["protein_id"].strip():
            raise ValueError(f"{where}: field {fov!r} has two protein_id values")
        index = row.get("channel_index", "").strip() or "0"
        if not index.isdigit():
            raise ValueError(f"{where}: channel_index {index!r} is not an integer >= 0")
        images[channel] = (_file(row["path"], path, where, "path"), int(index))
    specs = []
    for fov, (row, images) in by_fov.items():
        lacking = [s for s in stains if s not in images]
        if lacking:
            raise ValueError(
                f"{path}: field {fov!r} has no image of channel(s) {lacking} in column "
                f"'channel' (it has {sorted(images)}; the manifest's channels: {sorted(found)})"
            )
        specs.append(_field_spec(row, tuple((s, *images[s]) for s in stains), fov, path))
    return specs
