"""Standalone viewer pages: three.js (the copy pythreejs ships) and the scenes, as base64 arrays,
inlined into one HTML file that works without a kernel and without internet. The page's own
JavaScript is ``viewer_page.html`` next to this module (package data of ``symnb.viz``)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from ..utils import atomic_write

PAGE_TEMPLATE = Path(__file__).with_name("viewer_page.html")


def b64(a: np.ndarray, dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


def save_html(text: str, filename) -> Path:
    path = Path(filename)
    if path.suffix != ".html":
        path = path.with_name(path.name + ".html")
    with atomic_write(path) as fh:
        fh.write(text)
    return path


def three_js_source() -> str:
    """The three.js build (r97) bundled inside the pythreejs wheel (no network needed)."""
    import pythreejs

    path = Path(pythreejs.__file__).parent / "static" / "three.js"
    if not path.is_file():
        raise FileNotFoundError(f"three.js not found at {path}; reinstall pythreejs>=2.4")
    return path.read_text()


def standalone_html(views, title: str = "symnb viewer", row_labels=None, col_labels=None) -> str:
    """One HTML page drawing a grid of viewers with three.js inlined (drag rotates, wheel zooms).

    After the first frame ``window.symnbRendered`` holds the number of views drawn.
    """
    cells = []
    for r, row in enumerate(views):
        for c, view in enumerate(row):
            cells.append({"row": r, "col": c, "scene": None if view is None else view.scene_json()})
    data = {"cells": cells, "rows": len(views), "cols": max(len(r) for r in views),
            "row_labels": [str(x) for x in row_labels] if row_labels else None,
            "col_labels": [str(x) for x in col_labels] if col_labels else None}
    payload = json.dumps(data).replace("</", "<\\/")
    return (PAGE_TEMPLATE.read_text().replace("__TITLE__", html.escape(title))
            .replace("__THREE__", three_js_source().replace("</script", "<\\/script"))
            .replace("__DATA__", payload))
