"""Channel names: the three with a built-in meaning and any named stain, checked once
for every layer (the crop store, preprocessing, the model's inputs)."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["CHANNEL_NAMES", "NUCLEAR_STAINS", "check_channels", "named_stains"]

#: Channel names with a built-in meaning: the tagged protein, the signed distance to the
#: nucleus (computed, scaled to [-1, 1]) and the nuclear stain. A store may also hold any
#: other named stain (``DNA``, ``ER``, ``RNA``, ``AGP``, ``Mito``, ``GFP``...): see
#: :func:`check_channels`.
CHANNEL_NAMES = ("protein", "distance", "nucleus")
_CHANNEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.+-]{0,63}")


def check_channels(
    channels: object, n_channels: int | None = None, *, array: str = "`crops` (axis 1)"
) -> tuple[str, ...]:
    """Validate channel names (also used by ``cyto.preprocess``); ``array`` names what
    must have ``n_channels`` channels in the error message.

    A name is :data:`CHANNEL_NAMES` or any stain name: a letter, then up to 63 letters,
    digits or ``_.+-`` (``DNA``, ``ER``, ``Mito``, ``GFP``, ``Alexa-488``).
    """
    if isinstance(channels, str) or not isinstance(channels, Sequence):
        raise TypeError(
            f"`channels` must be a sequence of channel names (e.g. {list(CHANNEL_NAMES)} "
            f"or DNA, ER, RNA, AGP, Mito), got {type(channels).__name__} {channels!r}"
        )
    channels = tuple(channels)
    bad = [c for c in channels if not isinstance(c, str) or not _CHANNEL_NAME.fullmatch(c)]
    if bad or not channels:
        raise ValueError(
            f"`channels` {channels!r} must be a non-empty sequence of channel names (a "
            f"letter, then letters, digits or _.+-){f'; not names: {bad}' if bad else ''}"
        )
    if len(set(channels)) != len(channels):
        raise ValueError(f"`channels` {channels!r} contains duplicates")
    if n_channels is not None and len(channels) != n_channels:
        raise ValueError(
            f"`channels` names {len(channels)} channels {channels!r} but {array} has "
            f"{n_channels} channels"
        )
    return channels


#: Channel names taken for the nuclear stain, in order of preference.
NUCLEAR_STAINS = ("nucleus", "DNA", "DAPI", "Hoechst", "hoechst", "dapi", "dna")


def named_stains(channels: Sequence[str] | None) -> list[str]:
    """The channels that are stains read from images by name (all but
    :data:`CHANNEL_NAMES`: ``DNA``, ``ER``, ...), in order."""
    return [c for c in channels or () if c not in CHANNEL_NAMES]
