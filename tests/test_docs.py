"""The documentation points at things that exist: every relative link in README.md and docs/*.md, and
every repository file path that a docstring, comment or doc names."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
#: A repository path: a top-level folder of the repository, then a file name with an extension.
PATH = re.compile(r"(?<![\w./-])((?:src|docs|tests|tools|benchmarks)/[\w./-]*\w\.(?:py|md|json|png|sh|toml|txt))")


def sources() -> list[Path]:
    return [p for folder in ("src", "tools", "tests", "benchmarks") for p in sorted((REPO / folder).rglob("*.py"))]


def test_every_relative_link_in_the_docs_exists():
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:|^#", target):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{doc.relative_to(REPO)}: {target}")
    assert broken == []


def test_every_repository_path_named_in_code_and_docs_exists():
    missing = []
    for path in [*DOCS, *sources()]:
        for name in set(PATH.findall(path.read_text(encoding="utf-8"))):
            if not (REPO / name).exists() and "*" not in name:
                missing.append(f"{path.relative_to(REPO)}: {name}")
    assert missing == []


def test_the_method_page_is_in_the_repository_and_cited_by_its_path():
    assert (REPO / "docs" / "method.md").is_file()
    old = [str(p.relative_to(REPO)) for p in sources() if re.search(r"(?<!docs/)METHOD\.md", p.read_text("utf-8"))]
    assert sorted(old) == []
    assert "docs/method.md" in (REPO / "src" / "ddnsr" / "cli" / "train.py").read_text("utf-8")


def test_colour_drift_is_cited_where_it_is():
    assert "## Colour drift" in (REPO / "docs" / "results.md").read_text("utf-8")
    old = [str(p.relative_to(REPO)) for p in sources()
           if re.search(r"README,\s*[\"']Colour drift", p.read_text("utf-8"))]
    assert sorted(old) == []


def test_paths_are_found_at_all():
    named = {name for p in sources() for name in PATH.findall(p.read_text("utf-8"))}
    assert "docs/method.md" in named and len(named) > 10
