"""Lazy torch access to the HDF5 crop store: dataset, augmentation, split, sampler.

Nothing here loads the store into memory. A :class:`CropDataset` keeps only the
path; every process (the main one and each DataLoader worker) opens its own
read-only handle on first use, so the dataset works with any number of workers and
with both the ``fork`` and ``spawn`` start methods (no lambdas, everything pickles).
Batches are read with one sorted HDF5 read each (``__getitems__``), so a batch costs
one decompression per touched chunk rather than one per crop.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from cyto._cpus import available_cpus, free_cpus

__all__ = [
    "SPLIT_NAMES",
    "BlockShuffleSampler",
    "CropBatch",
    "CropDataset",
    "DihedralAugment",
    "PairedCropDataset",
    "check_finite_crops",
    "collate_crops",
    "default_num_workers",
    "encode_labels",
    "split_crops",
]

#: Codes stored in ``split.npz`` / the embedding file: 0 train, 1 val, 2 test.
SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def check_finite_crops(
    x: np.ndarray | torch.Tensor, rows: np.ndarray | None, store: Any, consequence: str
) -> None:
    """Raise a ValueError naming the crops of ``store`` in ``x`` with NaN or inf pixels.

    The one check of every stage that reads crops (training's pixel variance,
    validation, embedding).

    Parameters
    ----------
    x : (B, ...) array or Tensor
        A batch of crops.
    rows : (B,) int array or None
        Their store rows (named in the message), or None when unknown (a validation
        batch: the message says so).
    store : path-like
        The crop store (named in the message).
    consequence : str
        Why it matters, e.g. ``"their encodings would be meaningless"``.
    """
    flat = x.reshape(x.shape[0], -1)
    if isinstance(flat, torch.Tensor):
        finite = torch.isfinite(flat).all(1).cpu().numpy()
    else:
        finite = np.isfinite(flat).all(1)
    if finite.all():
        return
    if rows is None:
        bad = int((~finite).sum())
        which = f"{bad} crop{'s' if bad > 1 else ''} of a validation batch"
    else:
        bad = np.asarray(rows)[~finite]
        which = f"crops {bad[:5].tolist()}{' ...' if bad.size > 5 else ''}"
    raise ValueError(
        f"crop store {store} holds non-finite pixels ({which}); {consequence}: fix or drop "
        "those crops"
    )


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Vectorised SplitMix64 finaliser: a fast, well-mixed hash of uint64 values."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def _epoch_key(seed: int, epoch: int) -> np.uint64:
    """The hash key of ``(seed, epoch)``: per-crop draws hash the crop index with it."""
    return _splitmix64(np.uint64(seed & 0xFFFFFFFF) << np.uint64(32) | np.uint64(epoch))


class DihedralAugment:
    """Random 90° rotations and flips (the 8 symmetries of the square), on the fly.

    Each crop gets one of the 8 dihedral transforms, chosen by a hash of
    ``(seed, epoch, crop index)``. The choice therefore does not depend on which
    DataLoader worker reads the crop or on the batch it lands in, which makes a
    resumed run see exactly the augmentations of an uninterrupted one. All four
    rotations occur (the reference implementation only ever produced 0° and 180°).

    Parameters
    ----------
    seed : int, default 0
        Base seed.

    Examples
    --------
    >>> aug = DihedralAugment(seed=0)
    >>> x = np.arange(2 * 1 * 2 * 2, dtype=np.float32).reshape(2, 1, 2, 2)
    >>> aug(x, np.array([0, 1]), epoch=0).shape
    (2, 1, 2, 2)
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def codes(self, indices: np.ndarray, *, epoch: int) -> np.ndarray:
        """Code ``k`` in 0..7 per crop index: ``k % 4`` quarter turns, flipped if ``k >= 4``."""
        idx = np.asarray(indices, dtype=np.uint64)
        key = _epoch_key(self.seed, epoch)
        return (_splitmix64(idx ^ key) >> np.uint64(61)).astype(np.int64)

    def __call__(
        self, batch: np.ndarray, indices: np.ndarray, *, epoch: int, dtype: Any = None
    ) -> np.ndarray:
        """Apply the transforms to ``batch`` (n, C, S, S) for crops ``indices`` (n,).

        ``dtype`` converts in the same pass (e.g. float16 crops to float32 tensors).
        """
        codes = self.codes(indices, epoch=epoch)
        out = np.empty(batch.shape, dtype=batch.dtype if dtype is None else dtype)
        # one copy per crop: grouping crops by transform first would copy each twice more
        for k, code in enumerate(codes):
            part = batch[k, ..., ::-1] if code >= 4 else batch[k]
            out[k] = np.rot90(part, k=int(code % 4), axes=(-2, -1))
        return out

    def __repr__(self) -> str:
        return f"DihedralAugment(seed={self.seed})"


class CropBatch(Sequence):
    """A batch read whole by :meth:`CropDataset.__getitems__`: ``(x, y)`` tensors.

    Indexing gives the ``(x[i], y[i])`` pairs (as a list of items would), while
    :func:`collate_crops` returns the stacked tensors as they are, without the copy
    of the default collation.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return self.x[i], self.y[i]


def collate_crops(items: Any) -> Any:
    """DataLoader ``collate_fn``: a :class:`CropBatch` as ``[x, y]``, anything else as
    torch's default collation does."""
    if isinstance(items, CropBatch):
        return [items.x, items.y]
    from torch.utils.data import default_collate

    return default_collate(items)


class CropDataset(Dataset):
    """Crops of a :class:`cyto.data.CropStore` as ``(image, label)`` tensor pairs.

    Parameters
    ----------
    store : str or Path
        Path of the HDF5 crop store.
    indices : (M,) array of int, optional
        Store rows served by this dataset (sorted internally); default all rows.
    labels : (N,) array of int, optional
        Label of every store row (e.g. from :func:`encode_labels`); default 0.
    augment : DihedralAugment, optional
        On-the-fly augmentation; ``None`` serves the crops unchanged.

    Notes
    -----
    The store is opened lazily, once per process, so workers never share an HDF5
    handle. ``__getitems__`` reads a whole batch at once (each stored chunk once).
    Call :meth:`set_epoch` before each epoch so the augmentation changes.

    Examples
    --------
    >>> ds = CropDataset("crops.h5", indices=[0, 1, 2])  # doctest: +SKIP
    >>> image, label = ds[0]  # doctest: +SKIP
    """

    def __init__(
        self,
        store: str | os.PathLike,
        indices: Sequence[int] | np.ndarray | None = None,
        *,
        labels: np.ndarray | None = None,
        augment: DihedralAugment | None = None,
    ) -> None:
        from cyto.data import CropStore

        self.path = Path(store)
        # Validates the store up front. The handle is closed right away; every process
        # reopens its own on first read. Forked DataLoader workers share the store's
        # metadata pages copy-on-write instead of loading them again.
        self._store = CropStore(self.path)
        self._store.close()
        n = len(self._store)
        self.channels = tuple(self._store.channels)
        self.crop_size = int(self._store.crop_size)
        if indices is None:
            idx = np.arange(n, dtype=np.int64)
        else:
            idx = np.sort(np.asarray(indices, dtype=np.int64).ravel())
            if idx.size and (idx[0] < 0 or idx[-1] >= n):
                raise ValueError(
                    f"`indices` must lie in [0, {n}) for a store of {n} crops; "
                    f"got values in [{idx[0]}, {idx[-1]}]"
                )
        if labels is None:
            lab = np.zeros(n, dtype=np.int64)
        else:
            lab = np.asarray(labels, dtype=np.int64)
            if lab.shape != (n,):
                raise ValueError(f"`labels` must have shape ({n},); got {lab.shape}")
        self.indices = idx
        self.labels = lab
        self.augment = augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation of ``epoch`` (call before building the iterator)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.indices.size)

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        # As stored (float16 from `cyto preprocess`): the augmentation converts in its own
        # pass. CropStore.read sorts the rows, reads each crop's chunk directly and
        # reopens the file in a new process (fork-safe).
        return self._store.read(rows, dtype=None)

    def read(self, positions: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Read dataset positions as ``(crops (n, C, S, S) float32, labels (n,))``.

        The rows are read from the store in sorted order, each stored chunk once,
        and returned in the order of ``positions``.
        """
        pos = np.asarray(positions, dtype=np.int64)
        rows = self.indices[pos]
        if rows.size == 0:
            shape = (0, len(self.channels), self.crop_size, self.crop_size)
            return np.empty(shape, np.float32), self.labels[rows]
        out = self._read_rows(rows)
        if self.augment is not None:
            return self.augment(out, rows, epoch=self.epoch, dtype=np.float32), self.labels[rows]
        return np.ascontiguousarray(out, dtype=np.float32), self.labels[rows]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.read([i])
        return torch.from_numpy(x[0]), torch.tensor(y[0])

    def __getitems__(self, positions: list[int]) -> CropBatch:
        """A whole batch, read at once; :func:`collate_crops` passes it through unstacked."""
        x, y = self.read(positions)
        return CropBatch(torch.from_numpy(x), torch.from_numpy(y))

    def close(self) -> None:
        """Close this process's store handle (reopened on the next read)."""
        self._store.close()

    def __repr__(self) -> str:
        return f"CropDataset({str(self.path)!r}, n={len(self)}, augment={self.augment!r})"


class PairedCropDataset(CropDataset):
    """Pairs of crops of one protein, for paired cell inpainting (Lu et al. 2019).

    Item ``i`` is its crop (the *source*) and a *partner* (the *target*): another crop
    of the same protein among this dataset's rows, from another field of view when the
    protein has one, stacked along the channels as one (2C, S, S) tensor. The partner is
    chosen by a hash of ``(seed, epoch, source row)``, like the augmentation, so a
    resumed run sees the same pairs as an uninterrupted one and every epoch new ones.
    A crop is never paired with itself nor with another protein's; proteins with a
    single crop in the rows are left out (they have no partner).

    Parameters
    ----------
    store, indices, labels, augment
        As for :class:`CropDataset` (each crop of a pair is augmented on its own).
    fields : (N,) array, optional
        Field of view of every store row; pairs then prefer two fields.
    seed : int, default 0

    Examples
    --------
    >>> ds = PairedCropDataset("crops.h5", labels=labels, fields=fovs)  # doctest: +SKIP
    >>> pair, label = ds[0]  # (2C, S, S)  # doctest: +SKIP
    """

    def __init__(
        self,
        store: str | os.PathLike,
        indices: Sequence[int] | np.ndarray | None = None,
        *,
        labels: np.ndarray | None = None,
        augment: DihedralAugment | None = None,
        fields: np.ndarray | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(store, indices, labels=labels, augment=augment)
        n = self.labels.size
        self.fields = np.zeros(n, np.int64) if fields is None else np.asarray(fields)
        if self.fields.shape != (n,):
            raise ValueError(
                f"`fields` must have shape ({n},) (one per store row); got {self.fields.shape}"
            )
        self.seed = int(seed)
        lab = self.labels[self.indices]
        counts = np.bincount(lab) if lab.size else np.zeros(0, np.int64)
        self.left_out = int((counts[lab] < 2).sum()) if lab.size else 0
        self.indices = self.indices[counts[lab] >= 2] if lab.size else self.indices
        self._groups: dict[int, np.ndarray] = {}
        lab = self.labels[self.indices]
        order = np.argsort(lab, kind="stable")
        bounds = np.flatnonzero(np.diff(lab[order])) + 1
        for rows in np.split(self.indices[order], bounds):
            if rows.size:
                self._groups[int(self.labels[rows[0]])] = rows

    def partners(self, rows: np.ndarray, *, epoch: int) -> np.ndarray:
        """The partner (store row) of every source row in ``rows``.

        Parameters
        ----------
        rows : (n,) int array
            Store rows of this dataset.
        epoch : int

        Returns
        -------
        partners : (n,) int array
            Same protein, never the row itself; another field when there is one.
        """
        rows = np.asarray(rows, dtype=np.int64)
        key = _epoch_key(self.seed, epoch)
        draws = _splitmix64(rows.astype(np.uint64) ^ key ^ np.uint64(0xA5A5A5A5))
        out = np.empty_like(rows)
        for k, (r, h) in enumerate(zip(rows, draws)):
            group = self._groups[int(self.labels[r])]
            cands = group[self.fields[group] != self.fields[r]]
            if cands.size == 0:
                cands = group[group != r]
            out[k] = cands[int(h % np.uint64(cands.size))]
        return out

    def read(self, positions: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Read dataset positions as ``(pairs (n, 2C, S, S) float32, labels (n,))``."""
        pos = np.asarray(positions, dtype=np.int64)
        rows = self.indices[pos]
        c, s = len(self.channels), self.crop_size
        if rows.size == 0:
            return np.empty((0, 2 * c, s, s), np.float32), self.labels[rows]
        partners = self.partners(rows, epoch=self.epoch)
        both = np.concatenate([rows, partners])
        crops = self._read_rows(both)
        if self.augment is not None:
            # each crop of a pair gets its own transform (the partner's keyed apart)
            keys = np.concatenate([both[: rows.size], both[rows.size :] + self.labels.size])
            crops = self.augment(crops, keys, epoch=self.epoch, dtype=np.float32)
        pairs = np.concatenate([crops[: rows.size], crops[rows.size :]], axis=1)
        return np.ascontiguousarray(pairs, dtype=np.float32), self.labels[rows]

    def __repr__(self) -> str:
        return f"PairedCropDataset({str(self.path)!r}, n={len(self)}, augment={self.augment!r})"


class BlockShuffleSampler(DistributedSampler):
    """A :class:`~torch.utils.data.DistributedSampler` that can shuffle in blocks.

    With ``block_size=1`` this is an ordinary seeded random permutation (per
    epoch), sharded over ``num_replicas`` ranks. With ``block_size=b > 1`` runs of
    ``b`` consecutive rows are permuted as units and then shuffled within each
    batch-sized window, so a batch of 32 touches only ``32 / b`` regions of the
    HDF5 file: much faster reads from a compressed store on a slow disk, at the
    cost of batches made of ``32 / b`` groups of neighbouring crops.

    Parameters
    ----------
    dataset : Dataset
        The dataset to sample (only its length is used).
    num_replicas, rank : int, default 1, 0
        Distributed world size and this process's rank.
    shuffle : bool, default True
        Permute every epoch (from ``seed`` and the epoch set by :meth:`set_epoch`).
    seed : int, default 0
        Base seed (must be the same on all ranks).
    block_size : int, default 1
        Rows that stay together when shuffling.
    even : bool, default True
        Pad by repeating rows so all ranks get the same count (training). With
        ``even=False`` each row is served exactly once overall (evaluation).
    skip : int, default 0
        Leave out the first ``skip`` rows of this rank's order (resume mid-epoch).

    Examples
    --------
    >>> s = BlockShuffleSampler(range(10), seed=0)
    >>> sorted(s) == list(range(10))
    True
    """

    def __init__(
        self,
        dataset: Any,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        block_size: int = 1,
        even: bool = True,
        skip: int = 0,
    ) -> None:
        if int(block_size) < 1:
            raise ValueError(f"`block_size` must be >= 1; got {block_size}")
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.block_size = int(block_size)
        self.even = bool(even)
        self.skip = int(skip)

    def _order(self) -> np.ndarray:
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        rng = np.random.default_rng([self.seed, self.epoch])
        b = self.block_size
        if b == 1:
            return rng.permutation(n).astype(np.int64)
        nblocks = math.ceil(n / b)
        starts = rng.permutation(nblocks) * b
        order = (starts[:, None] + np.arange(b)[None, :]).ravel()
        order = order[order < n]
        # shuffle inside consecutive windows of 8 blocks so batches mix their blocks
        w = 8 * b
        for lo in range(0, order.size, w):
            rng.shuffle(order[lo : lo + w])
        return order

    def _shard(self) -> np.ndarray:
        order = self._order()
        n = order.size
        r, k = self.rank, self.num_replicas
        if self.even:
            per = math.ceil(n / k) if n else 0
            total = per * k
            if total > n:
                order = np.concatenate([order, order[: total - n]])
            return order[r * per : (r + 1) * per]
        bounds = np.linspace(0, n, k + 1).astype(np.int64)
        return order[bounds[r] : bounds[r + 1]]

    def __iter__(self) -> Iterator[int]:
        return iter(self._shard()[self.skip :].tolist())

    def __len__(self) -> int:
        n = len(self.dataset)
        if self.even:
            per = math.ceil(n / self.num_replicas) if n else 0
        else:
            bounds = np.linspace(0, n, self.num_replicas + 1).astype(np.int64)
            per = int(bounds[self.rank + 1] - bounds[self.rank])
        return max(per - self.skip, 0)


def default_num_workers(device: torch.device | str, *, processes: int = 1) -> int:
    """DataLoader workers to use when the configuration says ``-1`` ("auto").

    On a CPU device the model already uses every core, and a worker process stealing
    time from its OpenMP threads slows training far more than reading in the main
    process costs (measured 2.4x slower with one worker on 2 cores, while reading a
    batch takes ~2% of a step): 0 workers. On an accelerator, the CPU cores available
    to each of ``processes`` ranks on this node, minus one, at most 8.

    Examples
    --------
    >>> default_num_workers("cpu")
    0
    """
    if torch.device(device).type == "cpu":
        return 0
    return int(max(1, min(8, available_cpus() // max(processes, 1) - 1)))


def default_threads(processes: int | None = None, *, adapt: bool = False) -> int:
    """Torch compute threads for this process: its share of the CPUs it may use.

    The CPUs come from the affinity mask and the container's CPU quota
    (:func:`cyto._cpus.available_cpus`), not the machine's core count: a job pinned to 4
    cores of a 64-core node, or a container limited to 2 CPUs, would otherwise start 64
    threads that fight over them. Under ``torchrun`` the CPUs are shared by the node's
    ``LOCAL_WORLD_SIZE`` processes.

    Parameters
    ----------
    processes : int, optional
        Processes sharing the CPUs (default ``LOCAL_WORLD_SIZE``, else 1).
    adapt : bool, default False
        Also leave out the CPUs that other work keeps busy right now (sampled for
        0.25 s with :func:`cyto._cpus.free_cpus`; single process only). On 2 cores with
        one of them taken by another process, 2 threads train at a third of their idle
        speed and 1 thread at 95 % of its own (``benchmarks/results/threads.md``).

    Returns
    -------
    int

    Examples
    --------
    >>> default_threads() >= 1
    True
    """
    if processes is None:
        processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    n = max(1, available_cpus() // max(processes, 1))
    if adapt and processes <= 1:
        free = free_cpus()
        if free is not None:
            n = min(n, max(1, round(free)))
    return n


@contextlib.contextmanager
def torch_threads(threads: int = 0) -> Iterator[int]:
    """Run the block with ``threads`` torch compute threads, restoring the caller's setting.

    0 means at most :func:`default_threads` and at most what the caller had set (a
    process that lowered its thread count keeps it; one that never set it no longer
    starts more threads than it has CPUs).
    """
    before = torch.get_num_threads()
    n = threads or min(before, default_threads(adapt=True))
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def encode_labels(protein_ids: Sequence[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer labels from protein ids: index into the sorted unique ids.

    Parameters
    ----------
    protein_ids : (N,) array of str
        Protein id of every crop.

    Returns
    -------
    labels : (N,) ndarray of int64
        Class index of every crop.
    classes : (K,) ndarray of str
        Sorted unique protein ids (``classes[labels] == protein_ids``).

    Examples
    --------
    >>> labels, classes = encode_labels(["b", "a", "b"])
    >>> labels.tolist(), classes.tolist()
    ([1, 0, 1], ['a', 'b'])
    """
    ids = np.asarray(protein_ids).astype(str)
    classes, labels = np.unique(ids, return_inverse=True)
    return labels.astype(np.int64).ravel(), classes


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    frac = np.asarray(fractions, dtype=np.float64).ravel()
    if frac.shape != (3,) or np.any(frac < 0) or not np.isfinite(frac).all() or frac.sum() <= 0:
        raise ValueError(
            "`fractions` must be three non-negative numbers (train, val, test) with a "
            f"positive sum; got {tuple(np.asarray(fractions).ravel().tolist())}"
        )
    return frac / frac.sum()


def split_crops(
    protein_ids: Sequence[str] | np.ndarray,
    fov_ids: Sequence[str] | np.ndarray | None = None,
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    group_by_fov: bool = True,
) -> np.ndarray:
    """Deterministic train/validation/test split of the crops, per protein.

    With ``group_by_fov`` (the default) the crops of one field of view never
    straddle two splits: for every protein its fields are sorted by crop count
    (largest first, ties in a seeded random order) and each field goes to the
    split that is furthest below its target share, as in the published pipeline.
    A protein imaged in a single field therefore lands entirely in train.
    Without grouping, each protein's crops are shuffled and cut at the fractions.

    Parameters
    ----------
    protein_ids : (N,) array of str
        Protein id of every crop.
    fov_ids : (N,) array of str, optional
        Field of view of every crop; required when ``group_by_fov``.
    fractions : (3,) sequence of float, default (0.8, 0.1, 0.1)
        Train, validation and test shares (normalised to sum 1).
    seed : int, default 0
        Seed of the tie-breaking / shuffling.
    group_by_fov : bool, default True
        Keep the crops of a field in one split.

    Returns
    -------
    split : (N,) ndarray of int8
        0 = train, 1 = validation, 2 = test (see :data:`SPLIT_NAMES`).

    Raises
    ------
    ValueError
        If the fractions are invalid or the id arrays do not match.

    Examples
    --------
    >>> prot = ["a"] * 10
    >>> fov = [f"f{i}" for i in range(10)]
    >>> np.bincount(split_crops(prot, fov, seed=0), minlength=3).tolist()
    [8, 1, 1]
    """
    frac = _check_fractions(fractions)
    prot = np.asarray(protein_ids).astype(str).ravel()
    n = prot.size
    if group_by_fov:
        if fov_ids is None:
            raise ValueError("`fov_ids` is required when `group_by_fov` is True; got None")
        fov = np.asarray(fov_ids).astype(str).ravel()
        if fov.size != n:
            raise ValueError(
                f"`fov_ids` must have one entry per crop ({n}); got {fov.size} entries"
            )
    rng = np.random.default_rng(seed)
    split = np.zeros(n, dtype=np.int8)
    classes, pinv = np.unique(prot, return_inverse=True)
    pinv = pinv.ravel()
    order = np.argsort(pinv, kind="stable")
    bounds = np.searchsorted(pinv[order], np.arange(classes.size + 1))
    for p in range(classes.size):
        rows = order[bounds[p] : bounds[p + 1]]
        target = frac * rows.size
        if group_by_fov:
            fields, finv, counts = np.unique(fov[rows], return_inverse=True, return_counts=True)
            tie = rng.permutation(fields.size)
            field_order = np.lexsort((tie, -counts))
            filled = np.zeros(3)
            assign = np.empty(fields.size, dtype=np.int8)
            for f in field_order:
                s = int(np.argmax(target - filled))
                assign[f] = s
                filled[s] += counts[f]
            split[rows] = assign[finv.ravel()]
        else:
            perm = rng.permutation(rows)
            cuts = np.round(np.cumsum(target)[:2]).astype(np.int64)
            split[perm[cuts[0] : cuts[1]]] = 1
            split[perm[cuts[1] :]] = 2
    return split
