"""scripts/draw_method.py draws the method figure of the README and notebook 01, and the committed SVG is its output."""
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "docs" / "sracl_method.svg"


def labels(svg_path) -> list:
    """The figure's texts: matplotlib draws text as paths and writes each line's string as a comment before it."""
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    root = ET.parse(svg_path, parser=parser).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg", f"{svg_path} is not an SVG document"
    return [node.text.strip() for node in root.iter() if node.tag is ET.Comment]


def matplotlib_version(svg_path) -> str:
    return re.search(r"Matplotlib v([^,<\s]+)", Path(svg_path).read_text()).group(1)


def test_the_script_draws_every_part_with_its_notebook(tmp_path):
    out = tmp_path / "method.svg"
    subprocess.run([sys.executable, str(REPO / "scripts" / "draw_method.py"), "--out", str(out)], check=True,
                   capture_output=True)
    drawn = labels(out)
    text = "\n".join(drawn)
    for tag in ("nb 01", "nb 02", "nb 03", "nb 04", "nb 05", "nb 06"):
        assert tag in drawn, f"the figure lacks the tag {tag}"
    for loss in ("L_{rec}", "L_{cross}", "L_{intra}", "cross-entropy", "InfoNCE", "NT-Xent"):
        assert loss in text, f"the figure lacks the loss name {loss}"
    if matplotlib_version(COMMITTED) == matplotlib.__version__:
        assert out.read_bytes() == COMMITTED.read_bytes(), (
            "docs/sracl_method.svg is not the script's output: run `python scripts/draw_method.py` and commit it")
    else:  # another matplotlib writes other paths for the same drawing; the texts must still agree
        assert sorted(drawn) == sorted(labels(COMMITTED)), "docs/sracl_method.svg holds other labels than the script"
