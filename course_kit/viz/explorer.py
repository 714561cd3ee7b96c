"""The one interface every lab's widget follows (every lab with an explorer).

An explorer is a set of controls over a lab's results and a figure that answers them:

- ``explorer.widget``: the ipywidgets box to display (``display(explorer)`` shows it too);
- ``explorer.update(**values) -> dict``: recompute for the given control values, redraw, and
  return the numbers on display (also kept in ``explorer.state``); the controls' observers call it;
- ``explorer.figure``: the latest matplotlib figure, readable by tests;
- ``explorer.show(fig)``: the one helper that draws a figure into the explorer's ``Output``;
  ``explorer.show_png(png)`` shows an image already rendered (a fast redraw: blit the changing
  artists, then ``canvas_png(fig.canvas)``).

Plain pytest drives an explorer by setting a control's value (``explorer.controls["w"].value = 3``),
which fires the same observer a browser does.
"""

from __future__ import annotations

from typing import Any, Dict


class Explorer:
    """Base class: subclasses build ``self.controls`` and ``self.widget``, and implement ``update``."""

    def __init__(self) -> None:
        import ipywidgets as widgets

        self.controls: Dict[str, Any] = {}  # control name -> ipywidgets control (slider, dropdown, button)
        self.output = widgets.Output()  # where the figure is drawn
        self.label = widgets.HTML()  # one line of numbers under the controls
        self.state: Dict[str, Any] = {}  # the numbers on display
        self.figure = None  # the latest figure
        self.widget = None  # set by the subclass: the box to display

    def update(self, **values: Any) -> Dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def observe(self, name: str, control) -> None:
        """Register ``control`` under ``name`` and call ``update(name=new value)`` when it changes."""
        self.controls[name] = control
        control.observe(lambda change: self.update(**{name: change["new"]}), names="value")

    def show(self, fig) -> None:
        """Draw ``fig`` into the explorer's Output (replacing the previous figure), then close it."""
        import matplotlib.pyplot as plt
        from IPython.display import clear_output, display

        self.figure = fig
        with self.output:
            clear_output(wait=True)
            display(fig)
        plt.close(fig)

    def show_png(self, png: bytes) -> None:
        """Draw an already rendered PNG into the explorer's Output (replacing the previous image)."""
        from IPython.display import Image, clear_output, display

        with self.output:
            clear_output(wait=True)
            display(Image(data=png, format="png"))

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def canvas_png(canvas, compress_level: int = 1) -> bytes:
    """Encode what an Agg canvas holds now as PNG, fast (low compression, no redraw of the figure)."""
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(canvas.buffer_rgba())).save(buffer, format="png", compress_level=compress_level)
    return buffer.getvalue()
