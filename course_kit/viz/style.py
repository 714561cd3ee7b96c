"""The course's small plotting style, used by every lab's figures.

``use_style()`` sets readable defaults once; ``new_figure(ncols)`` returns a figure and axes of
a size that fits a notebook column. Colours: ``MAJORITY`` and ``MINORITY`` are used for the
two groups in every lab so students read the same colour as the same group throughout.
"""

from __future__ import annotations

import matplotlib

# Okabe & Ito's colour-blind-safe qualitative palette: every category and every seed takes one of these.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
MAJORITY = PALETTE[0]  # blue: the group the data over-represent
MINORITY = PALETTE[1]  # vermillion: the under-represented group
NEUTRAL = "#7f7f7f"  # grey: references (targets, reference policies)
ACCENT = PALETTE[2]  # bluish green: the method being taught

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
    "axes.prop_cycle": matplotlib.cycler(color=list(PALETTE)),
}


def use_style() -> None:
    """Apply the course's matplotlib defaults (idempotent); in an audited kernel, audit every figure shown."""
    matplotlib.rcParams.update(_STYLE)
    install_figure_audit()


_AUDIT_INSTALLED = False


def install_figure_audit() -> None:
    """With ``COURSE_KIT_FIGURE_AUDIT=1`` in a notebook kernel, print the audit's findings for every figure a cell shows.

    ``labs/conftest.py`` sets it for strict nbval: a figure that breaks a legibility rule
    (``course_kit.viz.audit``) prints a line no stored output has, so nbval fails on that cell and
    shows the problem. It runs where the figure is displayed (its text/plain form, unchanged).
    """
    global _AUDIT_INSTALLED
    import os
    import sys

    if _AUDIT_INSTALLED or os.environ.get("COURSE_KIT_FIGURE_AUDIT") != "1" or "IPython" not in sys.modules:
        return
    shell = sys.modules["IPython"].get_ipython()
    if shell is None:
        return

    from matplotlib.figure import Figure

    def audited_repr(fig, printer, cycle) -> None:  # the text/plain form of a figure a cell displays
        from course_kit.viz.audit import audit_figure

        for problem in audit_figure(fig):
            print(f"FIGURE AUDIT: {problem}")
        printer.text(repr(fig))

    def register(*_args) -> None:
        shell.display_formatter.formatters["text/plain"].for_type(Figure, audited_repr)

    import matplotlib.pyplot as plt

    plt.get_backend()  # resolve the backend now: activating the inline backend drops every Figure formatter
    try:
        plt._get_backend_mod()
    except Exception:  # pragma: no cover - a private helper that may move
        pass
    register()
    shell.events.register("pre_run_cell", register)  # and again before each cell, should anything reset it
    _AUDIT_INSTALLED = True


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.2):
    """Return ``(fig, axes)`` with ``ncols x nrows`` panels of ``width x height`` inches each."""
    import matplotlib.pyplot as plt

    if ncols < 1 or nrows < 1:
        raise ValueError(f"ncols and nrows must be >= 1, got ncols={ncols}, nrows={nrows}")
    use_style()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    fig.set_layout_engine("constrained")
    return fig, (axes[0, 0] if ncols * nrows == 1 else axes.ravel() if nrows == 1 or ncols == 1 else axes)


def legend_below(fig, ax, ncol: int | None = None, **kwargs):
    """One legend for the whole figure, below its panels (off the data), from the labelled artists of ``ax``.

    Needs the constrained layout of ``new_figure`` (``loc="outside lower center"`` reserves the room).
    """
    handles, labels = ax.get_legend_handles_labels()
    return fig.legend(handles, labels, loc="outside lower center", ncol=ncol or min(len(labels), 4), **kwargs)
