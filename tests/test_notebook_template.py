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


def test_template_itself_passes_its_rules():
    assert TEMPLATE.cells[0].source.startswith("# NN · ")
    assert [line for line in TEMPLATE.cells[2].source.splitlines()[2:] if not PARAMETER_LINE.match(line)] == []
