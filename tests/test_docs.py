"""The README and docs/ as a reader meets them: every relative link leads to a file the repository
holds, the ONNX example on docs/EXPORT.md is the one tests/test_export.py runs, and the README's
toy-world results table shows the figures of the results file it links."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code spans (code is not a link)."""
    text = re.sub(r"(?ms)^```.*?^```", "", text)
    return re.sub(r"`[^`\n]*`", "", text)


def relative_links(text: str) -> list[str]:
    """Link targets that are paths in the repository: no scheme, no bare #anchor."""
    targets = []
    for target in LINK.findall(_prose(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        targets.append(target)
    return targets


def test_the_link_pattern_finds_links_and_skips_code():
    text = ("see [a](docs/A.md#part), ![pic](b.png) and [web](https://x.org) or [here](#top)\n"
            "```python\nx = d[\"k\"](1)\n[not](a link)\n```\n`[code](nope.md)`\n")
    assert relative_links(text) == ["docs/A.md#part", "b.png"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    missing = []
    for target in relative_links(page.read_text()):
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            missing.append(target)
    assert not missing, f"{page.relative_to(ROOT)} links to files that do not exist: {missing}"


def test_the_export_page_shows_the_example_the_export_test_runs():
    tree = ast.parse((ROOT / "tests" / "test_export.py").read_text())
    example = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                   and getattr(node.targets[0], "id", None) == "README_EXAMPLE")
    assert example.strip() in (ROOT / "docs" / "EXPORT.md").read_text()


def test_readme_quick_start_names_the_two_scripts():
    text = (ROOT / "README.md").read_text()
    for command in ("bash scripts/quickstart.sh", "bash scripts/test.sh"):
        assert command in text
        assert (ROOT / command.split()[1]).is_file()


@pytest.mark.parametrize("heading, results_file, least", [
    ("## Results on the toy world at 300 steps", "toy_seeds.md", 18),
    ("## Results on genuine imagery", "toy_to_camvid.md", 8),
])
def test_readme_results_tables_show_the_linked_results_file(heading, results_file, least):
    """Each mean ± std the README shows in a results section is a figure of the results file it links."""
    readme = (ROOT / "README.md").read_text()
    results = (ROOT / "benchmarks" / "results" / results_file).read_text()
    section = readme.split(heading, 1)[1].split("\n## ", 1)[0]
    assert f"benchmarks/results/{results_file}" in section
    figures = re.findall(r"\d+\.\d+ ± \d+\.\d+", section)
    assert len(figures) >= least
    for figure in figures:
        assert figure in results, f"README shows {figure}, which {results_file} does not hold"


def test_readme_budget_table_shows_the_linked_results_file():
    """Each mean ± std of the README's fidelity-over-training table is a figure of budget.md."""
    readme = (ROOT / "README.md").read_text()
    results = (ROOT / "benchmarks" / "results" / "budget.md").read_text()
    section = readme.split("## Results on the toy world: label fidelity over training", 1)[1].split("\n## ", 1)[0]
    assert "benchmarks/results/budget.md" in section
    figures = re.findall(r"\d+\.\d+ ± \d+\.\d+", section)
    assert len(figures) >= 5
    for figure in figures:
        assert figure in results, f"README shows {figure}, which budget.md does not hold"
