"""Grids of viewers: :class:`Subplot` (meshplot's ``subplot`` result, with row / column labels),
:func:`subplot` and :func:`mesh_table` (samples x variants)."""

from __future__ import annotations

import html
import os
from pathlib import Path

from .html import save_html, standalone_html
from .static import draw_static
from .viewer import Viewer, _display, plot


class Subplot:
    """A grid of viewers (meshplot's ``subplot`` result), with optional row / column labels."""

    def __init__(self, rows: int, cols: int, row_labels=None, col_labels=None):
        self.shape = (rows, cols)
        self.views: list[list[Viewer | None]] = [[None] * cols for _ in range(rows)]
        self.row_labels, self.col_labels = row_labels, col_labels
        self._widget = None
        self._displayed = False

    def __setitem__(self, idx: int, view: Viewer) -> None:
        r, c = divmod(int(idx), self.shape[1])
        if r >= self.shape[0]:
            raise IndexError(f"subplot index {idx} outside a {self.shape[0]}x{self.shape[1]} grid")
        self.views[r][c] = view
        if self._widget is not None:
            self._widget.children = self._cells()

    def _cells(self) -> list:
        import ipywidgets as w

        cells = []
        if self.col_labels:
            cells += [w.HTML("")] * bool(self.row_labels) + [w.HTML(f"<b>{html.escape(str(t))}</b>")
                                                             for t in self.col_labels]
        for r, row in enumerate(self.views):
            if self.row_labels:
                cells.append(w.HTML(f"<b>{html.escape(str(self.row_labels[r]))}</b>"))
            cells += [v.widget if v is not None else w.HTML("") for v in row]
        return cells

    @property
    def widget(self):
        if self._widget is None:
            import ipywidgets as w

            cols = ("max-content " if self.row_labels else "") + " ".join(["max-content"] * self.shape[1])
            self._widget = w.GridBox(self._cells(), layout=w.Layout(grid_template_columns=cols))
        return self._widget

    def _repr_mimebundle_(self, **kwargs):
        if self._displayed:
            return {"text/plain": repr(self)}
        self._displayed = True
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        n = sum(v is not None for row in self.views for v in row)
        return f"<symnb.viz.Subplot {self.shape[0]}x{self.shape[1]}, {n} viewers>"

    def to_html(self, imports: bool = True, html_frame: bool = True, title: str = "symnb viewers") -> str:
        return standalone_html(self.views, title=title, row_labels=self.row_labels,
                               col_labels=self.col_labels)

    def save(self, filename: str | os.PathLike = "subplot.html") -> Path:
        return save_html(self.to_html(), filename)

    def to_matplotlib(self, elev=None, azim=None, cell_size: float = 3.0):
        titles = [[None] * self.shape[1] for _ in range(self.shape[0])]
        if self.col_labels:
            titles[0] = [str(t) for t in self.col_labels]
        fig = draw_static(self.views, elev=elev, azim=azim, titles=titles,
                           figsize=(cell_size * self.shape[1], cell_size * self.shape[0]))
        if self.row_labels:
            for r, label in enumerate(self.row_labels):
                fig.axes[r * self.shape[1]].text2D(-0.05, 0.5, str(label), rotation=90, va="center",
                                                   transform=fig.axes[r * self.shape[1]].transAxes)
        return fig


def subplot(v, f=None, c=None, uv=None, shading: dict | None = None, s=(1, 1, 0), data: Subplot | None = None,
            texture_data=None, display: bool = True) -> Subplot:
    """meshplot's ``subplot``: put a new viewer at index ``s[2]`` of an ``s[0]`` x ``s[1]`` grid.

    The first call (``data=None``) creates (and in IPython displays) the grid; pass its result as
    ``data`` to fill the other cells, which then appear in the displayed grid.
    """
    shading = {"width": 300, "height": 300, **(shading or {})}
    view = plot(v, f, c, uv, shading=shading, texture_data=texture_data, display=False)
    grid = data if data is not None else Subplot(int(s[0]), int(s[1]))
    if tuple(grid.shape) != (int(s[0]), int(s[1])):
        raise ValueError(f"s={list(s)} does not match the existing {grid.shape} grid")
    grid[int(s[2])] = view
    if data is None and display:
        _display(grid)
    return grid


def mesh_table(meshes, row_labels=None, col_labels=None, colors=None, shading: dict | None = None,
               size: int = 220, display: bool = True) -> Subplot:
    """A grid of meshes (e.g. samples x variants): ``meshes[r][c]`` is ``(v, f)``, a Meshes, or None.

    ``colors[r][c]`` (optional) is passed as ``c`` to each cell. Returns a :class:`Subplot`.
    """
    rows = len(meshes)
    cols = max((len(r) for r in meshes), default=0)
    if rows == 0 or cols == 0:
        raise ValueError("mesh_table needs at least one mesh")
    grid = Subplot(rows, cols, row_labels=row_labels, col_labels=col_labels)
    for r, row in enumerate(meshes):
        for c, m in enumerate(row):
            if m is None:
                continue
            v, f = (m, None) if hasattr(m, "verts_list") else m
            col = None if colors is None else colors[r][c]
            grid[r * cols + c] = plot(v, f, col, shading={"width": size, "height": size, **(shading or {})},
                                      display=False)
    if display:
        _display(grid)
    return grid
