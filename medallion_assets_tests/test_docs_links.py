"""Every relative link in README.md, CONTRIBUTING.md, benchmarks/README.md and docs/*.md resolves
to a file inside the repository, and every #anchor to a heading of its target: the README must
stand on its own in any clone. The README stays short and links the pages the rest moved to."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
EXTERNAL = ("http://", "https://", "mailto:")
README_MAX_LINES = 250
# Pages the README's sections moved to; each must exist and be linked from the README.
LINKED_PAGES = ("CONTRIBUTING.md", "docs/operations.md", "benchmarks/README.md")


def documents() -> list[Path]:
    return [
        REPO / "README.md",
        REPO / "CONTRIBUTING.md",
        REPO / "benchmarks" / "README.md",
        *sorted((REPO / "docs").glob("*.md")),
    ]


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(text: str) -> list[str]:
    prose = _prose(text)
    return LINK.findall(prose) + REFERENCE.findall(prose)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", markdown.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(markdown: Path, root: Path) -> list[str]:
    """Problems with the links of one Markdown file, as ``'<target>: <why>'``."""
    problems = []
    root = root.resolve()
    for target in links(markdown.read_text(encoding="utf-8")):
        if target.startswith(EXTERNAL):
            continue
        path_part, _, anchor = target.partition("#")
        if path_part.startswith("/") or re.match(r"^[a-zA-Z][\w+.-]*:", path_part):
            problems.append(f"{target}: absolute path or URL scheme; link inside the repository instead")
            continue
        resolved = (markdown.parent / path_part).resolve() if path_part else markdown.resolve()
        if resolved != root and root not in resolved.parents:
            problems.append(f"{target}: points outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{target}: no heading with anchor #{anchor}")
    return problems


@pytest.mark.parametrize("markdown", documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve_inside_the_repository(markdown):
    assert broken_links(markdown, REPO) == []


def test_readme_links_the_design_page():
    assert "docs/design.md" in links((REPO / "README.md").read_text(encoding="utf-8"))


def test_readme_is_short_and_links_the_pages_its_sections_moved_to():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    targets = {target.partition("#")[0] for target in links(text)}
    for page in LINKED_PAGES:
        assert (REPO / page).is_file(), page
        assert page in targets, f"README.md does not link {page}"


def test_checker_finds_every_kind_of_broken_link(tmp_path):
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "docs" / "page.md").write_text("# A page\n\n## Second `part`\n", encoding="utf-8")
    (tmp_path / "outside.md").write_text("# Outside\n", encoding="utf-8")
    readme = repo / "README.md"
    readme.write_text(
        "\n".join(
            [
                "[fine](docs/page.md) [anchor](docs/page.md#second-part) [self](#title) [web](https://dagster.io)",
                "[up](../outside.md) [abs](/etc/passwd) [gone](docs/missing.md) [bad](docs/page.md#nope)",
                "[file](file:///etc/passwd) ![img](docs/none.png)",
                "`[code](../not-a-link.md)`",
                "```",
                "[fenced](../not-a-link-either.md)",
                "```",
                "[ref]: ../outside.md",
                "# Title",
            ]
        ),
        encoding="utf-8",
    )
    assert broken_links(readme, repo) == [
        "../outside.md: points outside the repository",
        "/etc/passwd: absolute path or URL scheme; link inside the repository instead",
        "docs/missing.md: no such file",
        "docs/page.md#nope: no heading with anchor #nope",
        "file:///etc/passwd: absolute path or URL scheme; link inside the repository instead",
        "docs/none.png: no such file",
        "../outside.md: points outside the repository",
    ]
