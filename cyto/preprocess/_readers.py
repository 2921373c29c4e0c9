"""Readers: TIFF / OME-TIFF stacks and dataset listings (manifest CSV or folders)."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cyto.data._channels import named_stains
from cyto.preprocess._spec import (
    METADATA_COLUMNS,
    FovSpec,
    _canonical,
    _relative,
    _stem,
    is_metadata_column,
)
from cyto.preprocess._stains import stain_specs
from cyto.preprocess._validate import components_if_binary
from cyto.preprocess._zarr import is_ome_zarr, list_zarr_fovs, read_zarr_stack, zarr_digest

__all__ = [
    "MASK_SUFFIXES",
    "METADATA_COLUMNS",
    "VENDOR_SUFFIXES",
    "CodecError",
    "FovSpec",
    "attach_masks",
    "fingerprint",
    "is_metadata_column",
    "list_fovs",
    "read_labels",
    "read_manifest",
    "read_stack",
    "read_vendor_stack",
]

# Blocks of each input file hashed by `fingerprint` (start, middle, end).
_FINGERPRINT_BLOCK = 1 << 16

_TIFF_SUFFIXES = (".tif", ".tiff")


def _file_digest(path: Path, h: Any) -> None:
    size = path.stat().st_size
    h.update(size.to_bytes(8, "little"))
    with open(path, "rb") as fh:
        for offset in sorted(
            {0, max(size // 2 - _FINGERPRINT_BLOCK // 2, 0), max(size - _FINGERPRINT_BLOCK, 0)}
        ):
            fh.seek(offset)
            h.update(fh.read(_FINGERPRINT_BLOCK))


def fingerprint(spec: FovSpec) -> str:
    """A content fingerprint of a field's input files (independent of their paths).

    BLAKE2b over each file's size and three 64 KiB blocks (start, middle, end), and the
    channel indices read from them: enough to tell two images apart, three reads per
    file however large it is (a full hash of a 10⁵-field screen would read it all
    again on every resume). Two rows naming the same image, or a field whose file
    changed since it was preprocessed, are found by comparing fingerprints.

    Parameters
    ----------
    spec : FovSpec
        The field.

    Returns
    -------
    str
        32 hex digits.

    Raises
    ------
    FileNotFoundError
        If an input file is missing.
    """
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    h.update(f"{spec.protein_channel},{spec.nucleus_channel},{spec.axes}".encode())
    for name, _, index in spec.stains:
        h.update(f"{name}:{index}".encode())
    files = [p for _, p, _ in spec.stains] or [spec.path, spec.nucleus_path]
    for path in files:
        if path is not None and Path(path).is_dir():  # an OME-Zarr image
            zarr_digest(Path(path), h)
        elif path is not None:
            _file_digest(Path(path), h)
    for tag, path in ((b"nuclei", spec.mask_path), (b"cells", spec.cell_mask_path)):
        if path is not None:  # a field is redone when its user mask changes
            h.update(tag)
            _file_digest(Path(path), h)
    return h.hexdigest()


def _micromanager_order(tif) -> tuple[int, int] | None:
    """(n_channels, n_z) and z-fastest order from MicroManager per-page metadata."""
    slices = []
    for page in tif.pages:
        tag = page.tags.get(51123)  # MicroManager per-image metadata
        if tag is None:
            return None
        value = tag.value
        if isinstance(value, str):
            import ast

            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                import json

                try:
                    value = json.loads(value)
                except ValueError:
                    return None
        if not isinstance(value, dict) or "SliceIndex" not in value:
            return None
        slices.append(int(value["SliceIndex"]))
    n_pages = len(slices)
    n_z = len(set(slices))
    if n_z == 0 or n_pages % n_z:
        return None
    return n_pages // n_z, n_z


def _default_axes(shape: tuple[int, ...]) -> str:
    if len(shape) == 2:
        return "YX"
    if len(shape) == 3:
        return "CYX" if shape[0] <= 4 else "ZYX"
    if len(shape) == 4:
        return "CZYX"
    raise ValueError(f"cannot guess the axes of a {len(shape)}-D image with shape {shape}")


def _image_limit() -> int:
    """Bytes one image may take: ``CYTO_MAX_IMAGE_GB`` (default 4 GiB), at most half of
    the machine's physical memory."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        total = 16 << 30
    wanted = float(os.environ.get("CYTO_MAX_IMAGE_GB", "4")) * 2**30
    return int(min(wanted, total / 2))


def _check_size(path: Path, tif: Any) -> None:
    """Refuse, before allocating, an image whose header promises more than can be true or
    more than cyto reads at once."""
    page = tif.pages[0]
    nbytes = max(int(tif.series[0].nbytes), len(tif.pages) * int(page.nbytes))
    size = path.stat().st_size
    if page.compression == 1 and int(page.nbytes) > size:
        raise ValueError(
            f"{path}: its header describes a {nbytes / 2**30:.2f} GiB uncompressed image "
            f"({'x'.join(map(str, page.shape))} per page) but the file holds {size} bytes: "
            "the file is damaged or truncated"
        )
    limit = _image_limit()
    if nbytes > limit:
        raise ValueError(
            f"{path}: its header describes a {nbytes / 2**30:.1f} GiB image, more than cyto "
            f"reads at once ({limit / 2**30:.1f} GiB; set CYTO_MAX_IMAGE_GB to allow more); "
            "split it into fields or check that the file is not damaged"
        )


#: Vendor formats read through bioio and its plugins (the ``cyto[vendor]`` extra).
VENDOR_SUFFIXES = (".nd2", ".czi", ".lif")


def read_vendor_stack(path: str | os.PathLike) -> np.ndarray:
    """Read a vendor file (Nikon ``.nd2``, Zeiss ``.czi``, Leica ``.lif``) as (C, Z, Y, X).

    Read with bioio and its reader plugins (``pip install "cyto[vendor]"``), first scene,
    first time point.

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    stack : (C, Z, Y, X) ndarray

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    cyto.MissingExtraError
        If bioio is not installed (the message names the extra).
    ValueError
        If bioio cannot read the file (e.g. its plugin is missing).
    """
    from cyto._optional import require

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    bioio = require("bioio", "vendor", purpose=f"reading {path.suffix} files")
    try:
        image = bioio.BioImage(path)
        return np.asarray(image.get_image_data("CZYX", T=0))
    except Exception as err:  # plugins raise their own types
        raise ValueError(
            f"{path}: bioio cannot read it ({type(err).__name__}: {err}); is the reader "
            f"plugin for {path.suffix} installed (bioio-nd2, bioio-czi, bioio-lif)?"
        ) from None


def _decode(part: Any, tif: Any, path: Path) -> np.ndarray:
    """``part.asarray()``, with a codec error that says what to install."""
    try:
        return part.asarray()
    except (ValueError, ImportError) as err:
        if not isinstance(err, ImportError) and "imagecodecs" not in str(err):
            raise
        compression = getattr(tif.pages[0].compression, "name", str(tif.pages[0].compression))
        raise CodecError(
            f"{path}: its pixels are {compression}-compressed and no codec for "
            f"{compression} is installed ({err}); install the imagecodecs package "
            "(`pip install imagecodecs`, a dependency of cyto: reinstalling cyto brings it)"
        ) from None


class CodecError(ValueError):
    """A TIFF whose compression needs a codec that is not installed (a ValueError)."""


def read_stack(path: str | os.PathLike, *, axes: str | None = None) -> np.ndarray:
    """Read a TIFF / OME-TIFF stack as a (C, Z, Y, X) array.

    Axes come from ``axes`` when given, else from the file's OME / ImageJ
    metadata, else from the shape: 4-D → CZYX, 3-D → CYX when the first axis is
    at most 4 long (a few channels) and ZYX otherwise, 2-D → YX. Files whose
    pages are not grouped into one series (MicroManager writes one series per
    page) are read page by page and stacked; channel and z counts then come from
    the MicroManager ``SliceIndex`` of each page, or from ``axes`` (e.g.
    ``"CZYX"`` with pages in channel-major order; the channel count is then the
    page count divided by the number of distinct slices, or 1).

    An OME-Zarr image folder (``.zarr``, or a field of a plate) is read by
    :func:`cyto.preprocess.read_zarr_stack` (``axes`` is then taken from its metadata).

    Parameters
    ----------
    path : str or PathLike
        A ``.tif`` / ``.tiff`` / ``.ome.tif`` file or an OME-Zarr image folder.
    axes : str, optional
        Axes of the stored array, letters from C, Z, Y, X (T/other axes of size 1
        are dropped).

    Returns
    -------
    stack : (C, Z, Y, X) ndarray
        In the file's dtype.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file cannot be read as TIFF or its shape does not match ``axes``.

    Examples
    --------
    >>> import numpy as np, tempfile, os, tifffile
    >>> p = os.path.join(tempfile.mkdtemp(), "fov.tif")
    >>> tifffile.imwrite(p, np.zeros((2, 3, 8, 8), np.uint16), photometric="minisblack")
    >>> read_stack(p).shape
    (2, 3, 8, 8)
    >>> read_stack(p, axes="ZCYX").shape
    (3, 2, 8, 8)
    """
    import tifffile

    path = Path(path)
    if is_ome_zarr(path) or any(q.suffix.lower() == ".zarr" for q in (path, *path.parents)):
        return read_zarr_stack(path)
    if path.suffix.lower() in VENDOR_SUFFIXES:
        return read_vendor_stack(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty (0 bytes): copy or export it again")
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            n_pages = len(tif.pages)
            _check_size(path, tif)
            if len(tif.series) > 1 and len(series.pages) < n_pages and series.ndim == 2:
                # one series per page (MicroManager): stack every page
                data = np.stack([_decode(page, tif, path) for page in tif.pages])
                order = _micromanager_order(tif)
                if axes is None:
                    if order is not None:
                        n_c, n_z = order
                        data = data.reshape(n_c, n_z, *data.shape[1:])
                        return data
                    axes = "ZYX"
                elif len(axes) == 4 and data.ndim == 3:
                    ax = axes.upper()
                    n_c = order[0] if order is not None else 1
                    first, second = ax[0], ax[1]
                    n_first = n_c if first == "C" else n_pages // n_c
                    data = data.reshape(n_first, n_pages // n_first, *data.shape[1:])
                    if {first, second} != {"C", "Z"}:
                        raise ValueError(f"{path}: axes {axes!r} must be CZYX or ZCYX")
            else:
                data = _decode(series, tif, path)
                if axes is None:
                    meta_axes = series.axes
                    known = set(meta_axes) & set("CZTS")
                    axes = meta_axes if known else _default_axes(data.shape)
    except (tifffile.TiffFileError, OSError, IndexError, KeyError) as err:
        raise ValueError(f"{path}: cannot read as TIFF: {err}") from None
    if axes is not None and axes.upper() in ("QYX", "QQYX", "IYX"):
        axes = _default_axes(data.shape)
    return _canonical(data, axes, path)


def _int_field(row: dict, key: str, default: int, where: str) -> int:
    value = (row.get(key) or "").strip()
    if not value:
        return default
    try:
        out = int(value)
    except ValueError:
        raise ValueError(f"{where}: column {key!r} must be an integer, got {value!r}") from None
    if out < 0:
        raise ValueError(f"{where}: column {key!r} must be >= 0, got {out}")
    return out


def read_manifest(
    path: str | os.PathLike, *, channels: Sequence[str] | None = None
) -> list[FovSpec]:
    """Read a manifest CSV: one row per field of view (or per image of a field).

    Columns: ``path`` (relative to the CSV's folder, or absolute), ``protein_id``;
    optional ``fov_id`` (default: the file name without ``.tif``/``.ome.tif``),
    ``protein_channel`` (default 1), ``nucleus_channel`` (default 0), ``axes``
    (default: from the file's metadata), ``nucleus_path`` (a separate file with the
    Hoechst image, relative like ``path``; empty: ``path`` holds both channels),
    ``mask_path`` (a nucleus label image made elsewhere: no segmentation),
    ``cell_mask_path`` (a cell label image: crops centred on the cells), and
    metadata columns carried to every crop (``plate``, ``well``, ``field``, ``site``,
    ``Metadata_*``).
    In rows with a ``nucleus_path`` both channel indices default to 0, so two
    single-channel files need no channel columns.

    With ``channels`` naming stains (``DNA,ER,RNA,AGP,Mito``: anything but
    ``protein``, ``nucleus`` and ``distance``), the manifest names its stains instead:
    one column per stain holding its image path, or one row per image with ``path``
    and ``channel`` columns (see :mod:`cyto.preprocess._stains`).

    Parameters
    ----------
    path : str or PathLike
        The CSV file.
    channels : sequence of str, optional
        The crop channels (``cyto preprocess --channels``); stain names among them are
        read from the manifest's columns (or its ``channel`` column).

    Returns
    -------
    fovs : list of FovSpec

    Raises
    ------
    FileNotFoundError
        If the CSV does not exist.
    ValueError
        If a required column is missing, a value is malformed, or fov ids repeat.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "manifest.csv"), "w") as f:
    ...     _ = f.write("path,protein_id\\nA/f1.tif,A\\nB/f1.ome.tif,B\\n")
    >>> [(s.protein_id, s.fov_id) for s in read_manifest(os.path.join(d, "manifest.csv"))]
    [('A', 'f1'), ('B', 'f1_1')]

    One file per channel (protein in ``f1_gfp.tif``, Hoechst in ``f1_dapi.tif``):

    >>> with open(os.path.join(d, "split.csv"), "w") as f:
    ...     _ = f.write("path,nucleus_path,protein_id\\nf1_gfp.tif,f1_dapi.tif,A\\n")
    >>> spec = read_manifest(os.path.join(d, "split.csv"))[0]
    >>> spec.nucleus_path.name, spec.protein_channel, spec.nucleus_channel
    ('f1_dapi.tif', 0, 0)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    try:
        stains = named_stains(channels)
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, strict=True)
            fields = [c.strip() for c in (reader.fieldnames or [])]
            if stains:
                rows = [{(k or "").strip(): (v or "") for k, v in row.items()} for row in reader]
                return stain_specs(rows, fields, [c for c in channels if c != "distance"], path)
            rows = _manifest_rows(reader, fields, path)
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); save the manifest as "
            "UTF-8 CSV"
        ) from None
    except csv.Error as err:
        raise ValueError(
            f"{path}, line {reader.line_num}: malformed CSV ({err}); check for an unclosed "
            'quote (")'
        ) from None
    return _specs_from_rows(rows, path)


def _manifest_rows(reader: csv.DictReader, fields: list[str], path: Path) -> list[dict]:
    """The manifest's rows with stripped keys (checks the required columns)."""
    missing = [c for c in ("path", "protein_id") if c not in fields]
    if missing:
        raise ValueError(
            f"{path}: manifest lacks column(s) {missing}; found {fields}, expected at least "
            "path, protein_id (optional fov_id, protein_channel, nucleus_channel, axes, "
            "nucleus_path, mask_path, cell_mask_path, plate, well, field, Metadata_*)"
        )
    return [{(k or "").strip(): (v or "") for k, v in row.items()} for row in reader]


def _specs_from_rows(rows: list[dict], path: Path) -> list[FovSpec]:
    """One :class:`FovSpec` per manifest row (line numbers in the messages)."""
    specs: list[FovSpec] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows, start=2):
        where = f"{path}, line {i}"
        rel = row["path"].strip()
        pid = row["protein_id"].strip()
        if not rel or not pid:
            raise ValueError(f"{where}: empty path or protein_id")
        file = Path(rel)
        if not file.is_absolute():
            file = path.parent / file
        fov = row.get("fov_id", "").strip()
        explicit = bool(fov)
        fov = fov or _stem(file)
        if fov in seen:
            if explicit:
                raise ValueError(f"{where}: fov_id {fov!r} repeats line {seen[fov]}")
            k = 1
            while f"{fov}_{k}" in seen:
                k += 1
            fov = f"{fov}_{k}"
        seen[fov] = i
        axes = row.get("axes", "").strip() or None
        nucleus_file = None
        nucleus_rel = row.get("nucleus_path", "").strip()
        if nucleus_rel:
            nucleus_file = Path(nucleus_rel)
            if not nucleus_file.is_absolute():
                nucleus_file = path.parent / nucleus_file
            if nucleus_file == file:
                raise ValueError(
                    f"{where}: nucleus_path {nucleus_rel!r} is the same file as path; leave "
                    "nucleus_path empty when one file holds both channels"
                )
        masks = [_relative(row.get(c, ""), path) for c in ("mask_path", "cell_mask_path")]
        protein_channel = _int_field(row, "protein_channel", 0 if nucleus_file else 1, where)
        nucleus_channel = _int_field(row, "nucleus_channel", 0, where)
        if nucleus_file is None and protein_channel == nucleus_channel:
            raise ValueError(
                f"{where}: protein_channel and nucleus_channel are both {protein_channel}; "
                "the protein and the Hoechst image must be different channels (or give the "
                "Hoechst image in nucleus_path)"
            )
        specs.append(
            FovSpec(
                path=file,
                protein_id=pid,
                fov_id=fov,
                protein_channel=protein_channel,
                nucleus_channel=nucleus_channel,
                axes=axes,
                nucleus_path=nucleus_file,
                mask_path=masks[0],
                cell_mask_path=masks[1],
                metadata=tuple((k, row[k].strip()) for k in row if is_metadata_column(k)),
            )
        )
    return specs


def list_fovs(
    source: str | os.PathLike,
    *,
    plate_map: str | os.PathLike | dict[str, str] | None = None,
    channels: Sequence[str] | None = None,
) -> list[FovSpec]:
    """List the fields of view of a dataset.

    ``source`` is a manifest CSV, a folder holding ``manifest.csv``, a folder
    with one sub-folder per protein id holding its TIFF files
    (``ROOT/<protein_id>/*.tif``; fov ids are ``<protein_id>/<file stem>``,
    channels 1 = protein and 0 = Hoechst), or an OME-Zarr plate or image (see
    :func:`cyto.preprocess.list_zarr_fovs`; a manifest may also name ``.zarr`` images
    in its ``path`` column).

    Parameters
    ----------
    source : str or PathLike
    plate_map : path-like or dict, optional
        ``well,protein_id`` table of an OME-Zarr plate.
    channels : sequence of str, optional
        The crop channels; stain names among them are read from a manifest's columns
        (:func:`read_manifest`).

    Returns
    -------
    fovs : list of FovSpec
        Sorted by protein id then file name for folders; in file order for manifests.

    Raises
    ------
    FileNotFoundError
        If ``source`` does not exist.
    ValueError
        If a folder holds neither a manifest nor any ``<protein_id>/*.tif``.

    Examples
    --------
    >>> import os, tempfile, numpy as np, tifffile
    >>> root = tempfile.mkdtemp()
    >>> for protein in ("LMNB1", "ACTB"):
    ...     os.mkdir(os.path.join(root, protein))
    ...     tifffile.imwrite(os.path.join(root, protein, "f1.tif"), np.zeros((8, 8), np.uint16))
    >>> [(s.protein_id, s.fov_id) for s in list_fovs(root)]
    [('ACTB', 'ACTB/f1'), ('LMNB1', 'LMNB1/f1')]
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"dataset not found: {source}")
    if is_ome_zarr(source):
        return list_zarr_fovs(source, plate_map=plate_map)
    if plate_map is not None:
        raise ValueError("`plate_map` applies to an OME-Zarr plate; `source` is not one")
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise ValueError(f"`source` {source} must be a manifest .csv file or a folder")
        return read_manifest(source, channels=channels)
    manifest = source / "manifest.csv"
    if manifest.is_file():
        return read_manifest(manifest, channels=channels)
    stains = named_stains(channels)
    if stains:
        raise ValueError(
            f"named stains {stains} are read from a manifest's columns; {source} holds no "
            "manifest.csv (give a manifest with one column per stain, or path,channel rows)"
        )
    specs = []
    for sub in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for file in sorted(sub.iterdir()):
            if file.is_file() and file.name.lower().endswith(_TIFF_SUFFIXES + VENDOR_SUFFIXES):
                specs.append(FovSpec(file, sub.name, f"{sub.name}/{_stem(file)}"))
    if not specs:
        raise ValueError(
            f"{source} holds no manifest.csv and no <protein_id>/*.tif files; "
            "expected one of the two dataset layouts"
        )
    return specs


#: Name endings of mask files found by :func:`attach_masks`, tried in order (cellpose
#: writes ``<image>_cp_masks.png``; CellProfiler and StarDist exports vary).
MASK_SUFFIXES = (
    "",
    "_cp_masks",
    "_masks",
    "_mask",
    "_labels",
    "_label",
    "_nuclei",
    "_MaskNuclei",
)
_MASK_EXTENSIONS = (".tif", ".tiff", ".png")


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Read a label image (TIFF or PNG) made by another tool: 0 = background.

    Parameters
    ----------
    path : path-like
        A 2-D label image (singleton axes are dropped). A binary image (boolean, 0/1,
        0/255 as CellProfiler exports masks) is labelled by connected components, so
        touching objects that share no background become one label.

    Returns
    -------
    labels : (M, N) int32 ndarray

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the image is not 2-D, holds floating-point or negative values, or cannot be
        read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    try:
        if path.suffix.lower() == ".png":
            from skimage.io import imread

            data = np.asarray(imread(path))
        else:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                data = _decode(tif.series[0], tif, path)
    except (OSError, ValueError, IndexError) as err:
        if isinstance(err, CodecError):
            raise
        raise ValueError(f"{path}: cannot read the mask: {err}") from None
    data = np.squeeze(data)
    if data.ndim != 2:
        raise ValueError(f"{path}: a mask must be one 2-D label image, got shape {data.shape}")
    if data.dtype.kind not in "biu":
        raise ValueError(
            f"{path}: a mask must hold integer labels (0 = background), got {data.dtype} "
            "values; export the label image, not a probability map"
        )
    components = components_if_binary(data)
    if components is not None:
        return components
    if data.min() < 0:
        raise ValueError(f"{path}: mask labels must be >= 0, got {int(data.min())}")
    if data.max() > np.iinfo(np.int32).max:
        raise ValueError(f"{path}: mask labels exceed int32 ({int(data.max())})")
    return data.astype(np.int32, copy=False)


def attach_masks(specs: list[FovSpec], masks: str | os.PathLike) -> list[FovSpec]:
    """Give every field its nucleus mask from a folder (``--masks DIR``).

    The mask of a field is the file in ``masks`` named after the field's id (``/``
    becomes ``_``), its image's stem or its nucleus image's stem, followed by one of
    :data:`MASK_SUFFIXES` and ``.tif``/``.tiff``/``.png`` — e.g. ``f1.tif``,
    ``f1_cp_masks.png`` (cellpose), ``ACTB_f1_labels.tif``, ``B7_DAPI_001_MaskNuclei.tiff``
    (CellProfiler's SaveImages naming). Fields that already name a ``mask_path`` keep
    it; fields without a mask file keep none and fail when preprocessed, with a message
    naming the files looked for.

    Parameters
    ----------
    specs : list of FovSpec
    masks : path-like
        The folder.

    Returns
    -------
    specs : list of FovSpec

    Raises
    ------
    FileNotFoundError
        If ``masks`` is not a folder.
    """
    from dataclasses import replace

    folder = Path(masks)
    if not folder.is_dir():
        raise FileNotFoundError(f"`masks` folder not found: {folder}")
    present = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    out = []
    for spec in specs:
        if spec.mask_path is None:
            spec = replace(spec, mask_path=_find_mask(spec, present, folder))
        out.append(spec)
    return out


def _find_mask(spec: FovSpec, present: dict[str, Path], folder: Path) -> Path:
    """The mask file of a field, or the first expected name (reported when missing)."""
    nucleus = [_stem(spec.nucleus_path)] if spec.nucleus_path is not None else []
    stems = dict.fromkeys([spec.fov_id.replace("/", "_"), _stem(spec.path), *nucleus])
    names = [f"{s}{suf}{ext}" for s in stems for suf in MASK_SUFFIXES for ext in _MASK_EXTENSIONS]
    for name in names:
        if name.lower() in present:
            return present[name.lower()]
    return folder / names[0]
