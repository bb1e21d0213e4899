"""Notebook hygiene: strip outputs (keeping cell tags) and check the `parameters` cell.

Usage: ``python -m symnb.nbtools strip nbs/*.ipynb`` or ``python -m symnb.nbtools check nbs/*.ipynb``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat

KEEP_CELL_METADATA = ("tags",)


def strip(path: str | Path) -> bool:
    """Remove outputs, execution counts and volatile metadata in place. Returns True if changed."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in KEEP_CELL_METADATA}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in ("kernelspec", "language_info")}
    nb.metadata.get("language_info", {}).pop("version", None)
    after = nbformat.writes(nb)
    if after != before:
        path.write_text(after)
    return after != before


def write(path: str | Path, cells: list[tuple[str, str]]) -> Path:
    """Write a stripped notebook from ``(kind, source)`` pairs.

    ``kind`` is "md", "code", or "params" (a code cell tagged ``parameters``).
    """
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for kind, source in cells:
        source = source.strip("\n")
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            cell = nbformat.v4.new_code_cell(source)
            if kind == "params":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    for cell in nb.cells:  # deterministic ids keep diffs small
        cell.pop("id", None)
    nb.nbformat_minor = 4
    path = Path(path)
    path.write_text(nbformat.writes(nb))
    return path


def parameter_cells(nb) -> list:
    """Cells tagged `parameters`."""
    return [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]


def _scalar(node) -> bool:
    """A literal string, number, bool or None, a number with its sign included (``-1``)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
        return isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool)
    return isinstance(node, ast.Constant)


def check(path: str | Path) -> list[str]:
    """Problems with a notebook: outputs left in, or not exactly one plain-scalar `parameters` cell."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            problems.append(f"{path.name}: cell {i} has outputs or an execution count")
    params = parameter_cells(nb)
    if len(params) != 1:
        problems.append(f"{path.name}: {len(params)} cells tagged 'parameters' (need exactly 1)")
    else:
        tree = ast.parse(params[0].source)
        for node in tree.body:
            ok = (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and _scalar(node.value)
                or isinstance(node, ast.AnnAssign)
                and _scalar(node.value)
            )
            if not ok:
                problems.append(
                    f"{path.name}: parameters cell line {node.lineno} is not `name = <scalar>`"
                )
    return problems


def parameters(path: str | Path) -> dict:
    """The default values of a notebook's `parameters` cell."""
    nb = nbformat.read(Path(path), as_version=4)
    out: dict = {}
    for cell in parameter_cells(nb):
        exec(compile(cell.source, str(path), "exec"), {}, out)  # plain scalar assignments only
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("strip", "check"):
        print(__doc__)
        return 2
    cmd, paths = argv[0], argv[1:]
    if cmd == "strip":
        for p in paths:
            if strip(p):
                print(f"stripped {p}")
        return 0
    problems = [msg for p in paths for msg in check(p)]
    print("\n".join(problems) or "notebooks ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
