"""Every numbered notebook opens as notebooks/_template.py does and keeps its Checks and Results."""
import re
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TEMPLATE = jupytext.read(NOTEBOOKS / "_template.py")
PARAMETER_LINE = re.compile(r'^[A-Z][A-Z0-9_]* = param\("[a-z0-9_]+", .+\)\s*(#.*)?$')


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")), ids=lambda p: p.stem)
def test_notebook_follows_the_template(path):
    cells = jupytext.read(path).cells
    title, colab, parameters = cells[0], cells[1], cells[2]
    assert title.cell_type == "markdown" and title.source.startswith(f"# {path.name[:2]} · "), \
        f"{path.name}: the first cell is the title '# {path.name[:2]} · ...'"
    for part in ("**What you will learn**", "**Runtime**"):
        assert part in title.source, f"{path.name}: the title cell lacks {part}"
    assert colab.source == TEMPLATE.cells[1].source, f"{path.name}: the Colab cell differs from _template.py"
    header = TEMPLATE.cells[2].source.splitlines()[:2]
    lines = parameters.source.splitlines()
    assert lines[:2] == header, f"{path.name}: the parameters cell must start with {header}"
    odd = [line for line in lines[2:] if not PARAMETER_LINE.match(line)]
    assert not odd, f"{path.name}: the parameters cell holds only NAME = param(...) lines, not {odd}"
    headings = [c.source.splitlines()[0] for c in cells if c.cell_type == "markdown"]
    assert "## Checks" in headings and "## Results" in headings, f"{path.name}: needs '## Checks' and '## Results'"
    assert headings.index("## Checks") < headings.index("## Results")


def test_the_readme_opens_every_notebook_in_colab_from_the_templates_address():
    """The address lives in _template.py's REPO_URL; scripts/set_repo_url.py keeps the README's links on it."""
    owner_name = re.search(r'REPO_URL = "https://github\.com/([^"]+)"', TEMPLATE.cells[1].source).group(1)
    readme = (NOTEBOOKS.parent / "README.md").read_text()
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        link = f"https://colab.research.google.com/github/{owner_name}/blob/main/notebooks/{path.name}"
        assert link in readme, f"README.md lacks the Colab link {link}"
    assert len(re.findall(r"colab\.research\.google\.com/github/", readme)) == len(list(NOTEBOOKS.glob("[0-9]*.ipynb")))


def test_template_itself_passes_its_rules():
    assert TEMPLATE.cells[0].source.startswith("# NN · ")
    assert [line for line in TEMPLATE.cells[2].source.splitlines()[2:] if not PARAMETER_LINE.match(line)] == []



MAX_CODE_LINES = 15
DEFINITION = re.compile(r"^\s*(async\s+)?(def|class)\s")
PRIVATE_ATTRIBUTE = re.compile(r"(?<=[\w)\]])\._[A-Za-z]\w*")


def lesson_rule_breaks(source: str) -> list:
    """What a code cell does against the lesson rules: more than MAX_CODE_LINES lines (blank ones
    count), a def or class with a body of its own lines (a one-line helper is fine), a private
    attribute (`obj._x`)."""
    breaks = ([f"{len(source.splitlines())} lines (at most {MAX_CODE_LINES})"]
              if len(source.splitlines()) > MAX_CODE_LINES else [])
    lines = [line for line in source.splitlines() if line.strip()]
    indent = lambda line: len(line) - len(line.lstrip())
    for line, following in zip(lines, lines[1:] + [""]):
        if DEFINITION.match(line) and (line.rstrip().endswith(":") or indent(following) > indent(line)):
            breaks.append(f"defines {line.strip()}")
    return breaks + [f"uses the private attribute {name}" for name in PRIVATE_ATTRIBUTE.findall(source)]


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")), ids=lambda p: p.stem)
def test_code_cells_are_short_and_call_the_library(path):
    """Notebooks read as lessons: short cells whose code calls sracl_lite, which holds the definitions."""
    breaks = {n: found for n, cell in enumerate(jupytext.read(path).cells)
              if cell.cell_type == "code" and (found := lesson_rule_breaks(cell.source))}
    assert not breaks, f"{path.name}, by cell index: {breaks}; move the code into sracl_lite or split the cell"


def test_lesson_rules_catch_what_they_forbid():
    assert lesson_rule_breaks("\n".join(f"x{n} = {n}" for n in range(MAX_CODE_LINES))) == []
    assert lesson_rule_breaks("\n".join(f"x{n} = {n}" for n in range(MAX_CODE_LINES + 1)))
    assert lesson_rule_breaks("\n\n".join(f"x{n} = {n}" for n in range(MAX_CODE_LINES // 2 + 2)))  # blanks count
    assert lesson_rule_breaks("def short(x): return x + 1\nclass Empty(Exception): pass") == []
    assert lesson_rule_breaks("def helper(x):\n    return x") == ["defines def helper(x):"]
    assert lesson_rule_breaks("class Backend(Base):\n    model_id = 'x'") == ["defines class Backend(Base):"]
    assert lesson_rule_breaks("trainer._views(x)") == ["uses the private attribute ._views"]
    assert lesson_rule_breaks("super().__init__()\nprint(x._y)\nfoo()._z") == [
        "uses the private attribute ._y", "uses the private attribute ._z"]
