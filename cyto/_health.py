"""Is an encoding worth analysing? One health check for training, ``embed`` and ``analyze``.

A collapsed model gives every crop (nearly) the same encoding; every number computed from
it downstream (kNN accuracy, clustering score, atlas) is then chance, silently. This module
holds the one definition of "degenerate" that the trainer (per validation epoch), ``cyto
embed`` (before the file is published) and ``cyto analyze`` (before scoring) share. It is
NumPy only, so every layer may use it (like :mod:`cyto._atomic`); the public names are
re-exported by :mod:`cyto.analysis`.

Statistics are accumulated block by block (:class:`HealthAccumulator`), so a store of any
size is checked without holding its encodings in memory.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "THRESHOLDS",
    "DegenerateEncodingError",
    "EncodingHealth",
    "HealthAccumulator",
    "check_encodings",
]

#: The limits below which an encoding is called degenerate (see :class:`EncodingHealth`).
THRESHOLDS: dict[str, float] = {
    # total variance across crops / mean squared norm of an encoding
    "min_relative_variance": 1e-6,
    # share of the crops that have the single most common global code map
    "max_top_map_fraction": 0.9,
    # distinct global code maps per crop (judged from 200 crops on: fewer than 2 maps
    # below that)
    "min_distinct_fraction": 0.01,
    # exp(entropy) of the global code usage over all crops and positions
    "min_perplexity": 1.5,
}
# the top-map share is only judged on this many crops or more
_MIN_CROPS_FOR_SHARE = 10


class DegenerateEncodingError(ValueError):
    """Encodings that carry no information about the crops (``.health`` says why)."""

    def __init__(self, message: str, health: EncodingHealth | None = None) -> None:
        super().__init__(message)
        self.health = health


@dataclass(frozen=True)
class EncodingHealth:
    """Summary statistics of a set of encodings and whether they are degenerate.

    Attributes
    ----------
    n : int
        Encodings checked.
    relative_variance : float
        Total variance across crops divided by the mean squared norm of an encoding
        (0 when every crop has the same encoding; NaN for non-finite values).
    non_finite : int
        Encodings holding NaN or infinite values.
    distinct_maps : int or None
        Distinct global code maps (None for continuous encodings).
    top_map_fraction : float or None
        Share of the crops with the most common code map.
    codes_used : int or None
        Codes used at least once, over all crops and positions.
    perplexity : float or None
        ``exp`` of the entropy of the code usage over all crops and positions.
    reasons : list of str
        Why the encodings are degenerate (empty when they are not).
    """

    n: int
    relative_variance: float
    non_finite: int
    distinct_maps: int | None = None
    top_map_fraction: float | None = None
    codes_used: int | None = None
    perplexity: float | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def degenerate(self) -> bool:
        """True when at least one threshold of :data:`THRESHOLDS` is crossed."""
        return bool(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (with ``degenerate``)."""
        out = asdict(self)
        out["degenerate"] = self.degenerate
        return out

    def describe(self) -> str:
        """One line of the numbers, e.g. for a log or an error message."""
        parts = [f"{self.n} crops", f"relative variance {self.relative_variance:.3g}"]
        if self.distinct_maps is not None:
            parts.append(f"{self.distinct_maps} distinct code maps")
            parts.append(f"most common map on {100 * (self.top_map_fraction or 0):.1f}% of crops")
        if self.codes_used is not None:
            parts.append(f"{self.codes_used} codes used (perplexity {self.perplexity:.3g})")
        if self.non_finite:
            parts.append(f"{self.non_finite} non-finite")
        return ", ".join(parts)


#: Values per block of :meth:`HealthAccumulator.update` (32 MiB in float64).
_BLOCK_VALUES = 1 << 22


class HealthAccumulator:
    """Streaming :class:`EncodingHealth`: feed blocks of encodings, then call :meth:`result`.

    Parameters
    ----------
    num_codes : int, optional
        Codebook size of the code maps (needed for the usage statistics).

    Examples
    --------
    >>> acc = HealthAccumulator(num_codes=4)
    >>> acc.update(np.ones((20, 3)), np.zeros((20, 2), dtype=int))
    >>> h = acc.result()
    >>> h.degenerate, h.distinct_maps
    (True, 1)
    >>> rng = np.random.default_rng(0)
    >>> acc = HealthAccumulator(num_codes=4)
    >>> acc.update(rng.normal(size=(20, 3)), rng.integers(0, 4, size=(20, 2)))
    >>> acc.result().degenerate
    False
    """

    def __init__(self, num_codes: int | None = None) -> None:
        self.num_codes = num_codes
        self.n = 0
        self.non_finite = 0
        self._sum: np.ndarray | None = None
        self._sumsq = 0.0
        self._maps: Counter[bytes] = Counter()
        self._usage: np.ndarray | None = None

    def update(self, encodings: Any, indices: Any = None) -> None:
        """Add a block.

        Parameters
        ----------
        encodings : (n, d) array_like
            Flattened encodings of ``n`` crops.
        indices : (n, m) array_like of int, optional
            Their code maps (flattened).
        """
        x = np.asarray(encodings)
        if x.ndim < 1 or (x.shape[0] == 0 and x.ndim == 1):
            raise ValueError(f"`encodings` must be (n, d), got shape {x.shape}")
        x = x.reshape(x.shape[0], -1)
        if indices is not None and np.shape(indices)[0] != x.shape[0]:
            raise ValueError(
                f"`indices` must have one row per encoding ({x.shape[0]}), got "
                f"{np.shape(indices)[0]}"
            )
        # in row blocks: float64 copies of 10^5 x 4,608 encodings would take 3.7 GB each
        step = max(1, _BLOCK_VALUES // max(x.shape[1], 1))
        for start in range(0, max(x.shape[0], 1), step):
            block = None if indices is None else indices[start : start + step]
            self._update_block(x[start : start + step], block)

    def _update_block(self, encodings: np.ndarray, indices: Any) -> None:
        x = np.asarray(encodings, dtype=np.float64)
        finite = np.isfinite(x).all(axis=1)
        self.non_finite += int((~finite).sum())
        x = x[finite]
        if self._sum is None:
            self._sum = np.zeros(x.shape[1])
        self._sum += x.sum(axis=0)
        self._sumsq += float(np.square(x).sum())
        self.n += int(x.shape[0])
        if indices is not None:
            idx = np.ascontiguousarray(np.asarray(indices)[finite])
            idx = idx.reshape(idx.shape[0], -1)
            self._maps.update(row.tobytes() for row in idx)
            if self.num_codes is not None:
                counts = np.bincount(idx.ravel().astype(np.int64), minlength=self.num_codes)
                self._usage = counts if self._usage is None else self._usage + counts

    def result(self) -> EncodingHealth:
        """The health of everything added so far."""
        n = self.n
        if n and self._sum is not None:
            mean_sq = self._sumsq / n
            total_var = max(mean_sq - float(np.square(self._sum / n).sum()), 0.0)
            rel = total_var / mean_sq if mean_sq > 0 else 0.0
        else:
            rel = math.nan
        if self.non_finite:
            rel = math.nan
        distinct = top = used = perp = None
        if self._maps:
            distinct = len(self._maps)
            top = self._maps.most_common(1)[0][1] / max(n, 1)
        if self._usage is not None and self._usage.sum() > 0:
            p = self._usage / self._usage.sum()
            used = int((self._usage > 0).sum())
            nz = p[p > 0]
            perp = float(np.exp(-(nz * np.log(nz)).sum()))
        reasons = _reasons(n, rel, self.non_finite, distinct, top, perp)
        return EncodingHealth(n, float(rel), self.non_finite, distinct, top, used, perp, reasons)


def _reasons(
    n: int,
    rel: float,
    non_finite: int,
    distinct: int | None,
    top: float | None,
    perp: float | None,
) -> list[str]:
    out = []
    if non_finite:
        out.append(f"{non_finite} encodings hold NaN or infinite values")
    if n < 2:
        return out
    if not rel >= THRESHOLDS["min_relative_variance"]:
        out.append(
            f"the encodings barely vary across crops (relative variance {rel:.3g} < "
            f"{THRESHOLDS['min_relative_variance']:g})"
        )
    if distinct == 1:
        out.append(f"all {n} crops have the same code map")
    elif distinct is not None and distinct < THRESHOLDS["min_distinct_fraction"] * n:
        out.append(
            f"only {distinct} distinct code maps for {n} crops (fewer than "
            f"{THRESHOLDS['min_distinct_fraction']:g} per crop)"
        )
    elif (
        top is not None and n >= _MIN_CROPS_FOR_SHARE and top >= THRESHOLDS["max_top_map_fraction"]
    ):
        out.append(f"{100 * top:.1f}% of the crops share one code map")
    if perp is not None and perp < THRESHOLDS["min_perplexity"]:
        out.append(f"code perplexity {perp:.3g} < {THRESHOLDS['min_perplexity']:g}")
    return out


def check_encodings(
    X: np.ndarray,
    indices: np.ndarray | None,
    *,
    num_codes: int | None,
    where: str,
    allow: bool = False,
) -> EncodingHealth:
    """The health of global encodings read for an analysis; degenerate ones refused.

    The one check every command that reads encodings makes (analyze, evaluate,
    explore), so none of them scores or draws encodings in which every crop is alike.

    Parameters
    ----------
    X : (n, ...) array
        Global encodings.
    indices : array, optional
        Their global VQ indices.
    num_codes : int, optional
        Size of the global codebook.
    where : str
        The file they come from, for the message.
    allow : bool, default False
        Return the health of degenerate encodings instead of raising.

    Returns
    -------
    health : EncodingHealth

    Raises
    ------
    DegenerateEncodingError
        If the encodings are degenerate and not ``allow`` (exit code 3 on the command line).
    """
    acc = HealthAccumulator(num_codes=num_codes)
    acc.update(X, indices)
    health = acc.result()
    if health.degenerate and not allow:
        raise DegenerateEncodingError(
            f"the encodings in {where} are degenerate: {'; '.join(health.reasons)} "
            f"({health.describe()}). Scores and atlas would be chance; retrain (see "
            "docs/training.md) or pass allow_degenerate=True (`--allow-degenerate`)",
            health,
        )
    return health
