"""The one interface every lab's widget follows (every lab with an explorer).

An explorer is a set of controls over a lab's results and a figure that answers them:

- ``explorer.widget``: the ipywidgets box to display (``display(explorer)`` shows it too);
- ``explorer.update(**values) -> dict``: recompute for the given control values, redraw, and
  return the numbers on display (also kept in ``explorer.state``); the controls' observers call it;
- ``explorer.figure``: the latest matplotlib figure, readable by tests;
- ``explorer.show(fig)``: the one helper that draws a figure into the explorer's ``Output`` (fast:
  its own Agg canvas, ``canvas_png``);
  ``explorer.blit(fig, moving)`` redraws only the artists a move changes over a stored bitmap (the
  fastest: a few ms); ``explorer.show_png(png)`` shows an image already rendered (in
  ``explorer.image``, an ``ipywidgets.Image``).

Plain pytest drives an explorer by setting a control's value (``explorer.controls["w"].value = 3``),
which fires the same observer a browser does.
"""

from __future__ import annotations

from typing import Any, Dict, Hashable, Sequence


class Explorer:
    """Base class: subclasses build ``self.controls`` and ``self.widget``, and implement ``update``."""

    def __init__(self) -> None:
        import ipywidgets as widgets

        self.controls: Dict[str, Any] = {}  # control name -> ipywidgets control (slider, dropdown, button)
        self.output = widgets.Output()  # where the figure is drawn
        self.image = widgets.Image(format="png")  # the figure, once shown: show_png swaps its bytes
        self._image_on_display = False  # is ``image`` inside ``output`` yet
        self.label = widgets.HTML()  # one line of numbers under the controls
        self.state: Dict[str, Any] = {}  # the numbers on display
        self.figure = None  # the latest figure
        self.png = None  # the latest image on display (PNG bytes), readable by tests
        self._backgrounds: Dict[tuple, Any] = {}  # (id(figure), key) -> bitmap without the moving artists (``blit``)
        self.widget = None  # set by the subclass: the box to display

    def update(self, **values: Any) -> Dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def observe(self, name: str, control) -> None:
        """Register ``control`` under ``name`` and call ``update(name=new value)`` when it changes."""
        self.controls[name] = control
        control.observe(lambda change: self.update(**{name: change["new"]}), names="value")

    def show(self, fig) -> None:
        """Draw ``fig`` into the explorer's Output, replacing the previous image (``self.png`` keeps it).

        Rendered here on an Agg canvas of the figure's own and encoded fast (``canvas_png``), not by the
        notebook's inline backend: its tight bounding box draws the figure twice and its PNG encoding
        is slow, together most of a move's time (Lab 07's router: 280 ms against under 50 ms here).
        The figure is closed for pyplot (the inline backend never shows it) and stays usable for the
        next move.
        """
        _own_agg_canvas(fig)
        fig.canvas.draw()
        self.figure = fig
        self.show_png(canvas_png(fig.canvas))

    def background(self, fig, moving: Sequence[Any], key: Hashable = None):
        """The stored bitmap of ``fig`` without the ``moving`` artists, for the static state ``key``; drawn once.

        ``key`` names what the static part depends on (the axis limits, say): one bitmap per key, kept
        for the explorer's life. The first bitmap of a figure also fixes its layout.
        """
        if (id(fig), key) not in self._backgrounds:
            _own_agg_canvas(fig)
            if fig.get_layout_engine() is not None:
                fig.canvas.draw()  # the layout engine runs here, once, with every artist in place
                fig.set_layout_engine("none")  # then the positions stay
            for artist in moving:
                artist.set_visible(False)
            fig.canvas.draw()
            self._backgrounds[id(fig), key] = fig.canvas.copy_from_bbox(fig.bbox)
            for artist in moving:
                artist.set_visible(True)
        return self._backgrounds[id(fig), key]

    def blit(self, fig, moving: Sequence[Any], key: Hashable = None) -> None:
        """Show ``fig`` where only the ``moving`` artists changed since the static state ``key``: redraw just them.

        The rest of the figure is drawn once per ``key`` (``background``); a call pastes that bitmap,
        draws the ``moving`` artists over it in z-order, as a full draw would, and sends the PNG
        (``canvas_png``). A static artist that a full draw puts above a moving one (a reference line
        over bars, a legend) must be listed in ``moving`` too, or the moving one would cover it. A
        move's redraw then costs a few milliseconds instead of a full draw, whose text layout alone
        takes most of 100 ms here. ``tests/test_explorer_blit.py`` compares it with a full draw.
        """
        bitmap = self.background(fig, moving, key)
        canvas = fig.canvas
        canvas.restore_region(bitmap)
        renderer = canvas.get_renderer()
        for artist in sorted(moving, key=lambda a: a.get_zorder()):  # stable: equal z-orders keep the given order
            artist.draw(renderer)  # what Axes.draw_artist does, for figure-level artists too
        self.figure = fig
        self.show_png(canvas_png(canvas))

    def show_png(self, png: bytes) -> None:
        """Show an already rendered PNG: the explorer's ``Image`` widget takes the new bytes.

        One message with the bytes as a binary buffer, and the page swaps the picture in place; a
        ``display`` into the Output instead sends them base64-encoded and rebuilds the output area.
        """
        from IPython.display import clear_output, display

        if not self._image_on_display:
            with self.output:
                clear_output(wait=True)
                display(self.image)
            self._image_on_display = True
        self.png = png
        self.image.value = png

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def _own_agg_canvas(fig) -> None:
    """Give ``fig`` an Agg canvas of its own and take it from pyplot: the explorer draws it, the inline backend never does."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    plt.close(fig)
    if type(fig.canvas) is not FigureCanvasAgg:
        FigureCanvasAgg(fig)


def canvas_png(canvas, compress_level: int = 1) -> bytes:
    """Encode what an Agg canvas holds now as an RGB PNG, fast (no redraw of the figure).

    Written here rather than by Pillow, whose encoder picks a PNG filter for every row: on a 650 x 220
    figure that filtering took 5 of its 8.6 ms, and a move of the Lab 06 explorer costs 15 ms in all.
    Rows are stored unfiltered (filter type 0) and deflated at ``compress_level``; the file is a
    little larger (a figure is mostly flat colour) and any PNG reader decodes it (tested against
    Pillow's decoder). The alpha channel is dropped: the figures are opaque.
    """
    import struct
    import zlib

    import numpy as np

    rgba = np.asarray(canvas.buffer_rgba())  # (H, W, 4) uint8
    height, width = rgba.shape[:2]
    rows = np.zeros((height, 1 + 3 * width), dtype=np.uint8)  # (H, 1 + 3W): filter byte 0, then R G B per pixel
    rows[:, 1:] = rgba[:, :, :3].reshape(height, 3 * width)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, deflate, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), compress_level))
            + chunk(b"IEND", b""))
