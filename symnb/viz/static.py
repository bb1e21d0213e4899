"""Static matplotlib pictures of viewer scenes (headless runs, reports): Lambert-shaded
``Poly3DCollection`` triangles, points, lines and text, seen from the viewer's camera."""

from __future__ import annotations

import matplotlib
import numpy as np

from .scene import rgb


def object_faces(o, light: np.ndarray):
    """Triangles (F, 3, 3) and their shaded RGBA (F, 4) for matplotlib."""
    tris = o.position[o.index]
    if o.uv is not None:
        uvc = o.uv[o.index].mean(1)
        h, w = o.texture.shape[:2]
        rows = np.clip(((1 - uvc[:, 1]) * (h - 1)).round().astype(int), 0, h - 1)
        cols = np.clip((uvc[:, 0] * (w - 1)).round().astype(int), 0, w - 1)
        base = o.texture[rows, cols].astype(np.float32) / 255
    elif o.color is not None:
        base = o.color[o.index].mean(1)
    else:
        base = np.broadcast_to(rgb(o.base_color), (len(tris), 3))
    n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    lambert = np.abs(n @ light)  # two-sided, as the widget's DoubleSide material
    rgb_ = np.clip(base * (0.45 + 0.55 * lambert[:, None]), 0, 1)
    return tris, np.concatenate([rgb_, np.full((len(tris), 1), o.shading["opacity"])], 1)


def _draw_view(ax, view, elev=None, azim=None) -> None:
    from mpl_toolkits.mplot3d.art3d import Line3DCollection, Poly3DCollection

    cam = view.camera()
    d = np.asarray(cam["position"]) - np.asarray(cam["target"])
    d /= np.linalg.norm(d)
    # matplotlib's axes are z-up: show the y-up world rotated by (x, y, z) -> (x, -z, y) (a rotation,
    # so the picture is not mirrored), seen from the viewer's camera direction, lit by a headlight
    swap = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float32)
    ds = swap @ d
    elev = np.degrees(np.arcsin(np.clip(ds[2], -1, 1))) if elev is None else elev
    azim = np.degrees(np.arctan2(ds[1], ds[0])) if azim is None else azim
    light = d.astype(np.float32)  # world frame, like the triangles' normals
    ax.set_facecolor(view.settings["background"])
    for o in view.objects.values():
        if o.kind == "mesh":
            tris, fc = object_faces(o, light)
            pc = Poly3DCollection(tris @ swap.T, facecolors=fc, edgecolors="none")
            if o.shading["wireframe"]:
                pc.set_edgecolor(matplotlib.colors.to_rgba(o.shading["wire_color"], 0.6))
                pc.set_linewidth(0.3)
            ax.add_collection3d(pc)
        elif o.kind == "points":
            p = o.position @ swap.T
            ax.scatter(p[:, 0], p[:, 1], p[:, 2], c=o.color if o.color is not None else o.base_color,
                       s=12, depthshade=False)
        elif o.kind == "lines":
            seg = (o.position @ swap.T).reshape(-1, 2, 3)
            col = o.color[::2] if o.color is not None else o.base_color
            ax.add_collection3d(Line3DCollection(seg, colors=col, linewidths=o.shading["line_width"] * 1.5))
        else:
            p = o.position[0] @ swap.T
            ax.text(*p, o.text, color=o.base_color)
    lo, hi = view._bounds()
    c = (lo + hi) / 2 @ swap.T
    half = np.maximum(np.abs((hi - lo) @ swap.T) / 2, 0.02 * np.max(hi - lo) + 1e-9)  # equal scale
    ax.set_xlim(c[0] - half[0], c[0] + half[0])
    ax.set_ylim(c[1] - half[1], c[1] + half[1])
    ax.set_zlim(c[2] - half[2], c[2] + half[2])
    ax.set_box_aspect(tuple(half), zoom=0.9)
    ax.view_init(elev=elev, azim=azim)
    ax.set_axis_off()


def draw_static(views, axes=None, elev=None, azim=None, figsize=(5, 5), titles=None):
    import matplotlib.pyplot as plt

    rows, cols = len(views), max(len(r) for r in views)
    if axes is None:
        fig = plt.figure(figsize=figsize)
        axes = np.array([[fig.add_subplot(rows, cols, r * cols + c + 1, projection="3d")
                          for c in range(cols)] for r in range(rows)])
    fig = axes.flat[0].figure
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            view = views[r][c] if c < len(views[r]) else None
            if view is None:
                ax.set_axis_off()
                continue
            _draw_view(ax, view, elev, azim)
            if titles and titles[r][c]:
                ax.set_title(titles[r][c], fontsize=9)
            bars = [o.colorbar for o in view.objects.values() if o.colorbar and o.shading["colorbar"]]
            for cmap, lo, hi in bars[:1]:
                sm = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(lo, hi), cmap)
                fig.colorbar(sm, ax=ax, orientation="horizontal", fraction=0.04, pad=0.0)
    return fig


def foreground_fraction(fig, background="#ffffff", tol: float = 0.02) -> float:
    """Fraction of a Figure's pixels that differ from ``background`` (a check that something was drawn)."""
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(np.float32) / 255
    return float((np.abs(img - rgb(background)).max(-1) > tol).mean())
