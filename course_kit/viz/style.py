"""The course's small plotting style, used by every lab's figures.

``use_style()`` sets readable defaults once; ``new_figure(ncols)`` returns a figure and axes of
a size that fits a notebook column. Colours: ``MAJORITY`` and ``MINORITY`` are used for the
two groups in every lab so students read the same colour as the same group throughout.
"""

from __future__ import annotations

import matplotlib

MAJORITY = "#1f77b4"  # blue: the group the data over-represent
MINORITY = "#d62728"  # red: the under-represented group
NEUTRAL = "#7f7f7f"  # grey: references (targets, reference policies)
ACCENT = "#2ca02c"  # green: the method being taught

_STYLE = {
    "figure.dpi": 90,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
}


def use_style() -> None:
    """Apply the course's matplotlib defaults (idempotent)."""
    matplotlib.rcParams.update(_STYLE)


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.2):
    """Return ``(fig, axes)`` with ``ncols x nrows`` panels of ``width x height`` inches each."""
    import matplotlib.pyplot as plt

    if ncols < 1 or nrows < 1:
        raise ValueError(f"ncols and nrows must be >= 1, got ncols={ncols}, nrows={nrows}")
    use_style()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    fig.set_layout_engine("constrained")
    return fig, (axes[0, 0] if ncols * nrows == 1 else axes.ravel() if nrows == 1 or ncols == 1 else axes)
