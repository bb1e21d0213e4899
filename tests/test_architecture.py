"""The layering of ARCHITECTURE.md, checked on the source: lower layers never import higher ones,
evaluation and reporting never import the training module, and no module exceeds 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "symnb"

#: layer of each module (by dotted prefix, longest match wins); see ARCHITECTURE.md
LAYERS = {
    "symnb": 0, "symnb.utils": 0, "symnb.config": 0, "symnb.camera": 0, "symnb.io": 0, "symnb.geometry": 0,
    "symnb.rasterizer": 0, "symnb.raster_kernels": 0, "symnb.raster_pairs": 0, "symnb.raster_numba": 0,
    "symnb.nbtools": 0,
    "symnb.cli_errors": 0,
    "symnb.symmetry": 1, "symnb.metrics": 1, "symnb.align": 1, "symnb.render": 1, "symnb.losses": 1,
    "symnb.examples": 1, "symnb.viz": 1, "symnb.templates": 1, "symnb.symgroup": 1, "symnb.detect": 1,
    "symnb.model": 2, "symnb.data": 2, "symnb.widgets": 2,
    "symnb.experiment": 3, "symnb.train": 3, "symnb.evaluate": 3, "symnb.report": 3,
    "symnb.demo": 4, "symnb.cli": 4,
}


def _layer(mod: str) -> int | None:
    best = max((p for p in LAYERS if mod == p or mod.startswith(p + ".")), key=len, default=None)
    return LAYERS[best] if best else None


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every symnb module a file imports (top level and inside functions), resolved to absolute names.

    Imports inside a module-level ``__getattr__`` are skipped: they are the lazy, deprecated aliases
    that keep a moved name importable from its old module for one release."""
    mod = _module_name(path)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    shims = {id(n) for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"
             for n in ast.walk(f)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in shims:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("symnb")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("symnb"):
                out.add(name)
                out |= {f"{name}.{a.name}" for a in node.names if _layer(f"{name}.{a.name}") is not None}
    return out


def _sources():
    return sorted(p for p in PKG.rglob("*.py"))


def test_every_module_has_a_layer():
    assert all(_layer(_module_name(p)) is not None for p in _sources())


def test_lower_layers_never_import_higher_ones():
    bad = []
    for p in _sources():
        me = _module_name(p)
        for imp in _imports(p):
            if _layer(imp) is not None and _layer(imp) > _layer(me) and not me.endswith(("symnb",)):
                bad.append(f"{me} (layer {_layer(me)}) imports {imp} (layer {_layer(imp)})")
    assert not bad, "\n".join(bad)


def test_evaluation_and_reporting_do_not_import_training():
    for name in ("evaluate.py", "report.py"):
        imports = _imports(PKG / "experiment" / name)
        assert not any(i.startswith(("symnb.experiment.train", "symnb.train")) for i in imports), name


def test_modules_are_small():
    long = {str(p.relative_to(ROOT)): n for p in [*_sources(), *(ROOT / "data_prep").glob("*.py")]
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
