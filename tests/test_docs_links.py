"""The docs stand on their own: relative links resolve, and nothing names files outside the repo."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")
EXTERNAL = ("ENVIRONMENTS" + ".md", "CPO" + ".md", "NOTES" + ".md", "DESIGN" + ".md")


def _markdown_files():
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _anchors(path):
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
            out.add(slug)
    return out


def test_relative_links_resolve():
    bad = []
    for md in _markdown_files():
        for target in LINK.findall(md.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (md.parent / file_part).resolve()
            if not dest.exists():
                bad.append(f"{md.relative_to(ROOT)}: {target}")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                bad.append(f"{md.relative_to(ROOT)}: {target} (anchor)")
    assert not bad, bad


def test_no_references_to_files_outside_the_repository():
    bad = []
    for top in ("src", "docs"):
        for path in (ROOT / top).rglob("*"):
            if path.suffix not in (".py", ".md", ".yaml", ".yml", ".txt"):
                continue
            text = path.read_text(encoding="utf-8")
            bad += [f"{path.relative_to(ROOT)}: {name}" for name in EXTERNAL if name in text]
    assert not bad, bad


def test_no_section_numbers_of_the_design_specification():
    """The specification the envs were designed from is not in the repository: the reference
    pages and the code say what they rely on instead of citing its sections (the dated logs
    under docs/experiments/ are history and keep their wording)."""
    bad = []
    for top in ("src", "docs"):
        for path in (ROOT / top).rglob("*"):
            if path.suffix not in (".py", ".md", ".yaml") or "experiments" in path.parts:
                continue
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"§\s*\d", line):
                    bad.append(f"{path.relative_to(ROOT)}:{i}")
    assert not bad, bad
