"""The README is the front page and docs/ holds the details: every relative link and image of the README
and of the docs pages points at a file of the repository, every docs page is linked from the README,
and the README stays short."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)


def _pages() -> list[Path]:
    return [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").glob("*.md"))]


def _links(page: Path) -> list[str]:
    return [t for t in LINK.findall(page.read_text()) if not re.match(r"[a-z]+://|#|mailto:", t)]


def test_every_relative_link_resolves():
    broken = [f"{p.relative_to(ROOT)} -> {t}" for p in _pages() for t in _links(p)
              if not (p.parent / t.split("#")[0]).exists()]
    assert not broken, "\n".join(broken)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t.split("#")[0]).resolve() for t in _links(ROOT / "README.md")}
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not missing, missing


def test_readme_is_a_front_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_link_finder():
    text = "see [a](docs/a.md), ![fig](docs/figures/x.png), [web](https://x.org) and [top](#top)"
    assert LINK.findall(text) == ["docs/a.md", "docs/figures/x.png", "https://x.org", "#top"]
