"""The checks of a batch's inputs before any work: duplicate fields, the same inputs
as a store being resumed, image kinds and pixel sizes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cyto.preprocess._readers import (
    FovSpec,
)


def _check_duplicates(specs: Sequence[FovSpec], sources: Mapping[str, str]) -> None:
    """Refuse a dataset that lists the same image (same content and channels) twice."""
    first: dict[str, FovSpec] = {}
    pairs = []
    for spec in specs:
        key = sources[spec.fov_id]
        if not key:
            continue
        if key in first:
            pairs.append(f"{first[key].fov_id!r} and {spec.fov_id!r} ({spec.path})")
        else:
            first[key] = spec
    if pairs:
        raise ValueError(
            f"the dataset lists the same image more than once: fov ids {'; '.join(pairs[:5])}"
            f"{' ...' if len(pairs) > 5 else ''}. Each field must appear once (its crops "
            "would otherwise land in both the training and the test split): remove the "
            "repeated rows"
        )


def _check_same_inputs(
    out: Path,
    done: Mapping[str, tuple[str, str]],
    specs: Sequence[FovSpec],
    sources: Mapping[str, str],
) -> None:
    """Refuse fields whose id is already in the store but came from other inputs."""
    clash = []
    for spec in specs:
        if spec.fov_id not in done:
            continue
        protein, source = done[spec.fov_id]
        if protein != spec.protein_id:
            clash.append(
                f"{spec.fov_id!r} (protein {protein!r} in the store, {spec.protein_id!r} now)"
            )
        elif source and sources[spec.fov_id] and source != sources[spec.fov_id]:
            clash.append(f"{spec.fov_id!r} (its image {spec.path} differs from the one stored)")
    if clash:
        raise ValueError(
            f"crop store {out} already holds field(s) {'; '.join(clash[:5])}"
            f"{' ...' if len(clash) > 5 else ''} made from other inputs: this is another "
            "dataset, or the images changed. Write to a new store (or give the new fields "
            "their own fov ids)"
        )


# image kinds no reader of cyto decodes, by their first bytes (and what they are)
_UNREADABLE = {
    b"\x89PNG": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"BM": "BMP",
    b"GIF8": "GIF",
}


def _check_image_kinds(specs: Sequence[FovSpec]) -> None:
    """Refuse, before any work, a dataset whose images cyto cannot read at all: PNG or
    JPEG files (whatever their names), or nothing but empty files. A few such files
    among readable ones stay per-field failures, reported with the rest."""
    kinds: Counter[str] = Counter()
    example: dict[str, Path] = {}
    for spec in specs:
        try:
            with open(spec.path, "rb") as fh:
                head = fh.read(8)
        except OSError:
            continue  # missing or a folder (OME-Zarr): the reader reports it per field
        kind = (
            "empty"
            if not head
            else next((k for sign, k in _UNREADABLE.items() if head.startswith(sign)), None)
        )
        if kind:
            kinds[kind] += 1
            example.setdefault(kind, Path(spec.path))
    flat = [k for k in kinds if k != "empty"]
    if flat:
        k = flat[0]
        raise ValueError(
            f"{kinds[k]} of the {len(specs)} images are {k} files (e.g. {example[k]}): cyto "
            "reads TIFF (any compression), OME-Zarr and .nd2/.czi/.lif stacks, with the "
            "channels and z planes a flat image cannot hold; export the stacks as TIFF"
        )
    if kinds["empty"] == len(specs):
        raise ValueError(
            f"every image of the dataset is an empty file (0 bytes; e.g. {example['empty']}): "
            "the copy or export that wrote them failed; copy them again"
        )


def _first_shape(specs: Sequence[FovSpec]) -> tuple[int, int] | None:
    """(height, width) of the first TIFF field whose header reads; None when none does."""
    import tifffile

    for spec in specs[:20]:
        try:
            with tifffile.TiffFile(spec.path) as tif:
                shape = tif.series[0].shape
        except Exception:  # not a TIFF, damaged, missing: the reader reports it per field
            continue
        if len(shape) >= 2:
            return int(shape[-2]), int(shape[-1])
    return None


def _check_scales(specs: Sequence[FovSpec], params: Mapping[str, Any]) -> None:
    """Refuse sizes and scales no field can satisfy (checked on the first field's size),
    instead of reporting "no nucleus was found" for every field."""
    shape = _first_shape(specs)
    if shape is None:
        return
    d = int(params["downsample_factor"])
    side = min(shape) // d
    where = f"the fields are {shape[0]}×{shape[1]} px"
    if side < 16:
        raise ValueError(
            f"`downsample_factor` {d} leaves {side} px of a field ({where}): nuclei cannot be "
            f"found at that scale; use at most {max(min(shape) // 64, 1)}"
        )
    if params["crop_size"] > side:
        raise ValueError(
            f"`crop_size` {params['crop_size']} is larger than the fields ({where}, "
            f"{side} px after downsampling by {d}); crops are cut around nuclei inside a field"
        )
    diameter = params["nucleus_diameter"]
    if diameter is not None and diameter / d > side / 2:
        raise ValueError(
            f"`nucleus_diameter` {diameter:g} px is larger than half a field ({where}); "
            "give the diameter in the image's pixels, or leave it out to estimate it"
        )
