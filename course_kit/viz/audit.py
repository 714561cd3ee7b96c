"""A legibility audit every figure of the course goes through in the tests (the browser issue).

``audit_figure(fig)`` returns the problems it finds, in words (empty: the figure passes). Rules:

1. **Labelled axes.** Every axes that shows a coordinate axis has an x label and a y label (image
   panels drawn with the axis off are exempt).
2. **A title or caption.** Every axes with data has a title, or the figure has a suptitle.
3. **Readable text on coloured cells.** Text drawn on top of an image (a confusion matrix, a heat
   map) has a contrast ratio of at least 4.5:1 (WCAG 2.x AA) with the cell colour under it.
4. **Legends off the data.** No plotted point (line vertex, scatter point) lies inside a legend's box.
5. **Tellable series.** The labelled lines and point sets of one axes look different: no two share
   colour, marker and line style (one colour per seed; a second factor may be a marker or a line
   style, as in "concept by marker, style by colour"). Their colours come from the course's
   colour-blind-safe palette (``style.PALETTE``, Okabe-Ito) or its named colours. Colour-mapped
   points (a continuous quantity with a colour bar) are exempt.
6. **Limits that follow the data.** On a linear axis, the plotted data span at least 20% of the axis
   range (a small blob in a huge frame fails), unless the data are a single value.
"""

from __future__ import annotations

from typing import List

import matplotlib.colors as mcolors
import numpy as np

from course_kit.viz import style

MIN_CONTRAST = 4.5
MIN_DATA_SPAN = 0.2


def _luminance(rgb) -> float:
    def channel(c):
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(float(c)) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a, b) -> float:
    """WCAG contrast ratio between two colours (any matplotlib colour spec)."""
    la, lb = _luminance(mcolors.to_rgb(a)), _luminance(mcolors.to_rgb(b))
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def _allowed_colours():
    allowed = {mcolors.to_hex(c).lower() for c in style.PALETTE}
    allowed |= {mcolors.to_hex(c).lower() for c in (style.MAJORITY, style.MINORITY, style.NEUTRAL, style.ACCENT,
                                                      "black", "white", "#333333", "#555555")}
    return allowed


def _data_points(ax) -> np.ndarray:
    """Display coordinates of the plotted points of ``ax`` (lines and scatter collections).

    Each artist's own transform is used (an ``axhline`` spans the axes, not its data).
    """
    pts = []
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=float)
        if len(xy) and line.get_visible():
            pts.append(line.get_transform().transform(xy[np.isfinite(xy).all(axis=1)]))
    for coll in ax.collections:
        offsets = np.asarray(coll.get_offsets(), dtype=float) if hasattr(coll, "get_offsets") else np.empty((0, 2))
        if len(offsets) and coll.get_visible():
            pts.append(coll.get_offset_transform().transform(offsets[np.isfinite(offsets).all(axis=1)]))
    return np.concatenate(pts) if pts else np.empty((0, 2))


def _data_values(ax, axis: int) -> np.ndarray:
    """The data coordinates along ``axis`` (0: x, 1: y) of what ``ax`` plots: lines and scatter points in data
    coordinates, and reference lines drawn at a data value on that axis (``axhline`` for y, ``axvline`` for x)."""
    reference = ax.get_xaxis_transform(which="grid") if axis == 0 else ax.get_yaxis_transform(which="grid")
    values = []
    for line in ax.get_lines():
        if not line.get_visible():
            continue
        transform = line.get_transform()
        if transform is ax.transData or transform is reference:  # identity: Transform.__eq__ is too lenient
            xy = np.asarray(line.get_xydata(), dtype=float)
            values.append(xy[:, axis])
    for coll in ax.collections:
        if coll.get_visible() and hasattr(coll, "get_offsets") and coll.get_offset_transform() is ax.transData:
            values.append(np.asarray(coll.get_offsets(), dtype=float)[:, axis])
    out = np.concatenate(values) if values else np.empty(0)
    return out[np.isfinite(out)]


def _marker(artist) -> str:
    """The marker of a line or of a scatter collection (its path's vertices), for telling series apart."""
    if hasattr(artist, "get_marker"):
        return str(artist.get_marker())
    paths = artist.get_paths() if hasattr(artist, "get_paths") else []
    return str(np.round(paths[0].vertices, 2).tolist()) if len(paths) else ""


def _linestyle(artist) -> str:
    style = artist.get_linestyle() if hasattr(artist, "get_linestyle") else ""
    return str(style[0] if isinstance(style, list) and style else style)


def _has_data(ax) -> bool:
    return bool(ax.get_lines() or ax.collections or ax.patches or ax.images)


def audit_figure(fig) -> List[str]:
    """The legibility problems of ``fig`` (see the module docstring), each naming the axes."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems = []
    suptitle = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    allowed = _allowed_colours()
    for k, ax in enumerate(fig.axes):
        if not ax.get_visible() or not _has_data(ax) or ax.get_label() == "<colorbar>":
            continue
        name = f"axes {k} ({ax.get_title() or 'untitled'})"
        axis_on = ax.axison
        # 1. labelled axes
        if axis_on and not ax.images:
            if not ax.get_xlabel().strip():
                problems.append(f"{name}: no x label")
            if not ax.get_ylabel().strip():
                problems.append(f"{name}: no y label")
        # 2. a title or caption
        if not ax.get_title().strip() and not suptitle.strip():
            problems.append(f"{name}: no title (and the figure has no suptitle)")
        # 3. text on coloured cells
        for image in ax.images:
            array = image.get_array()
            if array is None or np.ndim(array) != 2:
                continue
            for text in ax.texts:
                x, y = text.get_position()
                cell = image.to_rgba(array[int(round(np.clip(y, 0, array.shape[0] - 1))),
                                           int(round(np.clip(x, 0, array.shape[1] - 1)))])
                ratio = contrast_ratio(text.get_color(), cell)
                if ratio < MIN_CONTRAST:
                    problems.append(f"{name}: text {text.get_text()!r} has contrast {ratio:.1f}:1 on its cell (< {MIN_CONTRAST}:1)")
        # 4. legends off the data
        legend = ax.get_legend()
        points = _data_points(ax)
        if legend is not None and legend.get_visible() and len(points):
            box = legend.get_window_extent(renderer)
            inside = ((points[:, 0] > box.x0) & (points[:, 0] < box.x1) & (points[:, 1] > box.y0) & (points[:, 1] < box.y1))
            if inside.any():
                problems.append(f"{name}: the legend covers {int(inside.sum())} plotted point(s)")
        # 5. tellable series
        labelled = [h for h in ax.get_lines() + list(ax.collections) if not str(h.get_label()).startswith("_")
                    and getattr(h, "get_array", lambda: None)() is None]  # colour-mapped points carry a colour bar
        colours, looks = [], []
        for h in labelled:
            c = h.get_color() if hasattr(h, "get_color") and not hasattr(h, "get_facecolor") else None
            if c is None and hasattr(h, "get_facecolor"):
                fc = np.atleast_2d(h.get_facecolor())
                c = fc[0] if len(fc) else None
            if c is not None:
                colours.append(mcolors.to_hex(c).lower())
                looks.append((colours[-1], _marker(h), _linestyle(h)))
        if len(set(looks)) < len(looks):
            problems.append(f"{name}: {len(looks)} labelled series share {len(set(looks))} look(s) (colour, marker, "
                            f"line style): one colour each")
        off_palette = sorted(set(colours) - allowed)
        if off_palette:
            problems.append(f"{name}: colours outside the colour-blind-safe palette: {off_palette}")
        # 6. limits that follow the data (a reference line counts on the axis it is drawn at: axhline's y)
        if not ax.images:
            for axis, lim, scale in ((0, ax.get_xlim(), ax.get_xscale()), (1, ax.get_ylim(), ax.get_yscale())):
                values = _data_values(ax, axis)
                if scale != "linear" or len(values) < 2:
                    continue
                span = float(np.ptp(values))
                width = abs(lim[1] - lim[0])
                if span > 0 and width > 0 and span / width < MIN_DATA_SPAN:
                    problems.append(f"{name}: the data span {span / width:.0%} of the {'xy'[axis]} range (limits too wide)")
    return problems
