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
    "symnb.raster": 0,
    "symnb.nbtools": 0,
    "symnb.cli_errors": 0,
    "symnb.symmetry": 1, "symnb.metrics": 1, "symnb.align": 1, "symnb.render": 1, "symnb.losses": 1,
    "symnb.texture_losses": 1,
    "symnb.examples": 1, "symnb.viz": 1,
    "symnb.model": 2, "symnb.data": 2, "symnb.widgets": 2,
    "symnb.experiment": 3,
    "symnb.demo": 4, "symnb.cli": 4,
}


def _layer(mod: str) -> int | None:
    best = max((p for p in LAYERS if mod == p or mod.startswith(p + ".")), key=len, default=None)
    return LAYERS[best] if best else None


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """Every symnb module a file imports (top level and inside functions), resolved to absolute names.

    ``from . import sub`` of submodules imports those submodules (the package is already being
    imported). Imports inside a module-level ``__getattr__`` count like any other."""
    mod = _module_name(path)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
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
                subs = {f"{name}.{a.name}" for a in node.names if _is_module(f"{name}.{a.name}")}
                if node.module or len(subs) < len(node.names):  # `from . import sub` skips the package
                    out.add(name)
                out |= subs | {f"{name}.{a.name}" for a in node.names
                               if _layer(f"{name}.{a.name}") is not None}
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
        assert not any(i.startswith("symnb.experiment.train") for i in imports), name


def test_modules_are_small():
    long = {str(p.relative_to(ROOT)): n for p in [*_sources(), *(ROOT / "data_prep").glob("*.py")]
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def _graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in the file), as files exist for them. An
    import of a package counts as an import of its ``__init__``; the top package ``symnb`` (which
    re-exports the public API) is left out."""
    mods = {_module_name(p) for p in _sources()} - {"symnb"}
    return {_module_name(p): {i for i in _imports(p) if i in mods and i != _module_name(p)}
            for p in _sources() if _module_name(p) in mods}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    """No two modules import each other, directly or through others (imports inside functions count:
    a lazy import that ties a circle is a circle)."""
    graph = _graph()
    assert not _cycles(graph), "\n".join(" <-> ".join(c) for c in _cycles(graph))


def test_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


#: data_prep's settings dataclasses (no symnb Config base: data_prep stands below the package's configs)
DATA_PREP_CONFIGS = {"DatasetConfig", "CleanupSettings", "ViewSettings"}


def _config_classes():
    """(file, class) of every settings dataclass: the ``Config`` subclasses and data_prep's."""
    for p in [*_sources(), *(ROOT / "data_prep").glob("*.py")]:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ClassDef) and (node.name in DATA_PREP_CONFIGS or any(
                    isinstance(b, ast.Name) and b.id == "Config" for b in node.bases)):
                yield p.relative_to(ROOT), node


def test_every_config_field_has_its_own_docstring():
    """nerfstudio's style: a string right under each field (what it is, its units, allowed values)."""
    found, bare = set(), []
    for path, cls in _config_classes():
        found.add(cls.name)
        body = cls.body
        for i, stmt in enumerate(body):
            if isinstance(stmt, ast.AnnAssign):
                nxt = body[i + 1] if i + 1 < len(body) else None
                if not (isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                        and isinstance(nxt.value.value, str) and nxt.value.value.strip()):
                    bare.append(f"{path}: {cls.name}.{stmt.target.id}")
    assert {"ModelConfig", "LossWeights", "RenderSettings", "DataConfig", "TrainConfig", "EvalConfig",
            "ExperimentConfig", "DetectSettings", "FitConfig", *DATA_PREP_CONFIGS} <= found
    assert not bare, "\n".join(bare)
