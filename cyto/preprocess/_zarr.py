"""OME-Zarr (NGFF 0.4 and 0.5) input: plain multiscale images and HCS plates.

The arrays are read with ``zarr`` (the ``cyto[zarr]`` extra), lazily: listing a plate reads
only its JSON metadata, and each field's level-0 array is read when that field is
processed, so a plate larger than memory streams field by field (also on a Dask cluster).
The NGFF metadata is small JSON, parsed here: ``plate`` → ``wells`` → ``well.images`` →
``multiscales[0].datasets[0]`` (the full-resolution level) with its ``axes``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from cyto.preprocess._spec import FovSpec, _canonical

__all__ = ["is_ome_zarr", "list_zarr_fovs", "read_plate_map", "read_zarr_stack", "zarr_digest"]

# labels of a nuclear stain in the OMERO channel metadata
_NUCLEAR_LABELS = ("dapi", "hoechst", "nuc", "h33342", "draq5")


def _zarr() -> Any:
    from cyto._optional import require

    return require("zarr", "zarr", purpose="OME-Zarr input")


def _ngff(group: Any) -> dict[str, Any]:
    """A group's NGFF attributes (0.5 nests them under ``ome``; 0.4 does not)."""
    attrs = dict(group.attrs)
    return dict(attrs.get("ome", attrs))


def is_ome_zarr(path: str | os.PathLike) -> bool:
    """True for a folder that is a Zarr group (v2 ``.zgroup``/``.zattrs`` or v3 ``zarr.json``)."""
    p = Path(path)
    return p.is_dir() and any((p / n).is_file() for n in (".zattrs", ".zgroup", "zarr.json"))


def _open(path: Path) -> Any:
    zarr = _zarr()  # outside the try: a missing extra is its own error
    try:
        return zarr.open_group(str(path), mode="r")
    except Exception as err:  # zarr raises several types for a missing or broken group
        raise ValueError(
            f"{path}: not a readable Zarr group ({type(err).__name__}: {err})"
        ) from None


def read_zarr_stack(path: str | os.PathLike) -> np.ndarray:
    """Read the full-resolution level of an OME-Zarr image as a (C, Z, Y, X) array.

    Parameters
    ----------
    path : path-like
        An NGFF image group (with ``multiscales``), e.g. ``plate.zarr/B/2/0``.

    Returns
    -------
    stack : (C, Z, Y, X) ndarray

    Raises
    ------
    ValueError
        If the group is missing or has no ``multiscales``, or its axes are not a subset
        of t, c, z, y, x with y and x (a time axis must have length 1).
    """

    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: the OME-Zarr image is missing (listed but not on disk)")
    group = _open(path)
    ms = _ngff(group).get("multiscales")
    if not ms:
        raise ValueError(f"{path}: not an OME-Zarr image (no 'multiscales' metadata)")
    level0 = ms[0]["datasets"][0]["path"]
    axes = [a["name"] if isinstance(a, dict) else str(a) for a in ms[0].get("axes", [])]
    arr = group[level0]
    if not axes:  # NGFF 0.3 and older: always 5-D TCZYX
        axes = list("tczyx")[-arr.ndim :]
    bad = [a for a in axes if a.lower() not in "tczyx" or len(a) != 1]
    if bad or len(axes) != arr.ndim or not {"y", "x"} <= {a.lower() for a in axes}:
        raise ValueError(
            f"{path}: unexpected OME-Zarr axes {axes} for an array of shape {arr.shape}; "
            "expected a subset of t, c, z, y, x with y and x"
        )
    return _canonical(np.asarray(arr[...]), "".join(axes), path)


def _channel_roles(image_attrs: dict[str, Any]) -> tuple[int, int] | None:
    """(protein, nucleus) channel indices from OMERO channel labels (DAPI, Hoechst...)."""
    channels = image_attrs.get("omero", {}).get("channels", [])
    labels = [str(c.get("label", "")).lower() for c in channels]
    nuclear = [i for i, lab in enumerate(labels) if any(k in lab for k in _NUCLEAR_LABELS)]
    if len(labels) != 2 or len(nuclear) != 1:
        return None
    return 1 - nuclear[0], nuclear[0]


def read_plate_map(path: str | os.PathLike) -> dict[str, str]:
    """Read a plate map CSV (``well,protein_id``) into ``{well: protein_id}``.

    Wells may be written ``B2``, ``B02`` or ``B/2``; they are normalised to ``B2``.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If a column is missing or a well repeats.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"plate map not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in reader.fieldnames or []]
        if not {"well", "protein_id"} <= set(header):
            raise ValueError(f"{path}: a plate map needs columns well,protein_id; got {header}")
        out: dict[str, str] = {}
        for line, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            well = _well_name(row["well"])
            if well in out:
                raise ValueError(f"{path}, line {line}: well {row['well']!r} repeats")
            out[well] = row["protein_id"]
    return out


def _well_name(well: str) -> str:
    """``B/2``, ``B02`` or ``b2`` → ``B2``."""
    w = well.replace("/", "").strip()
    letters = "".join(ch for ch in w if ch.isalpha()).upper()
    digits = w[len(letters) :].lstrip("0") or "0"
    return f"{letters}{digits}"


def list_zarr_fovs(
    path: str | os.PathLike, *, plate_map: str | os.PathLike | dict[str, str] | None = None
) -> list[Any]:
    """The fields of an OME-Zarr plate (plate → well → field) or of one OME-Zarr image.

    Each field gets ``plate``, ``well`` and ``field`` metadata and the fov id
    ``<plate>/<well>/<field>``. Its protein is the plate map's entry for the well, else
    the well group's ``protein_id`` attribute; the nucleus channel is the one whose
    OMERO label names a nuclear stain (DAPI, Hoechst...) when there are two channels,
    else channel 0 (protein channel 1). A well listed in the plate metadata but absent
    on disk is still listed: it fails when processed, with its own message.

    Parameters
    ----------
    path : path-like
        The ``.zarr`` folder.
    plate_map : path-like or dict, optional
        ``well,protein_id`` CSV (see :func:`read_plate_map`) or mapping.

    Returns
    -------
    fovs : list of FovSpec

    Raises
    ------
    ValueError
        If the group is neither a plate nor an image, or a well has no protein label.
    """

    path = Path(path)
    root = _ngff(_open(path))
    if "multiscales" in root:
        roles = _channel_roles(root) or (1, 0)
        return [FovSpec(path, path.name.removesuffix(".zarr"), path.stem, *roles)]
    plate = root.get("plate")
    if plate is None:
        raise ValueError(
            f"{path}: an OME-Zarr group without 'plate' or 'multiscales' metadata; expected "
            "an HCS plate or an image"
        )
    if plate_map is None or isinstance(plate_map, dict):
        given = dict(plate_map or {})
    else:
        given = read_plate_map(plate_map)
    wells = {_well_name(k): v for k, v in given.items()}
    name = str(plate.get("name") or path.stem)
    specs = []
    for well in plate.get("wells", []):
        specs += _well_fovs(path, str(well["path"]), name, wells)
    return specs


def _well_fovs(root: Path, well_path: str, plate: str, wells: dict[str, str]) -> list[Any]:
    """The fields of one well (one placeholder field when the well is missing)."""

    well = _well_name(well_path)
    folder = root / well_path
    attrs = _ngff(_open(folder)) if folder.is_dir() else {}
    protein = wells.get(well) or attrs.get("protein_id")
    if not protein:
        raise ValueError(
            f"{root}: well {well} has no protein label; give a plate map (--plate-map "
            "well,protein_id) or a 'protein_id' attribute on the well group"
        )
    images = [str(im["path"]) for im in attrs.get("well", {}).get("images", [])] or ["0"]
    out = []
    for field in images:
        image = folder / field
        roles = _channel_roles(_ngff(_open(image))) if image.is_dir() else None
        meta = (("plate", plate), ("well", well), ("field", field))
        fov = f"{plate}/{well}/{field}"
        out.append(FovSpec(image, str(protein), fov, *(roles or (1, 0)), metadata=meta))
    return out


def zarr_digest(path: Path, h: Any) -> None:
    """Feed a Zarr image's identity to a hash: its metadata and its level-0 chunk sizes.

    Cheap (no pixel reads); a rewritten field changes its chunk files' sizes or names
    almost always, and its metadata when its shape changes.
    """
    for meta in sorted(path.glob("*")):
        if meta.name in (".zattrs", ".zarray", "zarr.json"):
            h.update(meta.read_bytes())
    try:
        level0 = _ngff(_open(path))["multiscales"][0]["datasets"][0]["path"]
    except (KeyError, IndexError, ValueError):
        return
    for file in sorted((path / level0).rglob("*")):
        if file.is_file():
            h.update(f"{file.relative_to(path)}:{file.stat().st_size};".encode())
