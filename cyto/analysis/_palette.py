"""Categorical colours that keep neighbouring classes apart (figures and explorer alike)."""

from __future__ import annotations

import colorsys

__all__ = ["UNLABELLED_COLOR", "categorical_colors"]

#: Kelly's (1965) colours of maximum contrast, without white, black and the grey that
#: marks unlabelled points, plus a teal; any two of the first 14 differ by > 60 in RGB.
_KELLY = (
    "#F3C300",  # vivid yellow
    "#875692",  # strong purple
    "#F38400",  # vivid orange
    "#A1CAF1",  # very light blue
    "#BE0032",  # vivid red
    "#C2B280",  # greyish yellow
    "#008856",  # vivid green
    "#E68FAC",  # strong purplish pink
    "#0067A5",  # strong blue
    "#8DB600",  # vivid yellowish green
    "#882D17",  # strong reddish brown
    "#B3446C",  # strong purplish red
    "#2B3D26",  # dark olive green
    "#00A3A3",  # teal (not Kelly's: his violet is too close to his purple)
    "#604E97",  # strong violet
    "#F99379",  # strong yellowish pink
    "#654522",  # deep yellowish brown
    "#DCD300",  # vivid greenish yellow
    "#E25822",  # reddish orange
    "#F6A600",  # vivid orange yellow
)

#: Colour of points without a label.
UNLABELLED_COLOR = "#C8C8C8"


def categorical_colors(n: int) -> list[str]:
    """``n`` distinct colours as ``#RRGGBB``, neighbours in the list far apart.

    The first 20 are Kelly's colours of maximum contrast; more are spread around the
    hue circle by the golden angle, alternating lightness, so that consecutive colours
    never look alike. The order puts the hues that resemble each other (the
    oranges and yellows) far apart, so up to 14 classes get clearly different colours.

    Parameters
    ----------
    n : int
        Number of colours (>= 0).

    Returns
    -------
    colors : list of str

    Examples
    --------
    >>> categorical_colors(3)
    ['#F3C300', '#875692', '#F38400']
    >>> len(set(categorical_colors(200)))
    200
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"`n` must be a non-negative int, got {n!r}")
    out = list(_KELLY[:n])
    for i in range(n - len(out)):
        hue = (i * 0.618033988749895) % 1.0
        light = (0.38, 0.55, 0.70)[i % 3]
        r, g, b = colorsys.hls_to_rgb(hue, light, 0.75)
        color = f"#{round(r * 255):02X}{round(g * 255):02X}{round(b * 255):02X}"
        while color in out:  # rounding can collide after thousands of colours
            r = (r + 1 / 255) % 1.0
            color = f"#{round(r * 255):02X}{round(g * 255):02X}{round(b * 255):02X}"
        out.append(color)
    return out
