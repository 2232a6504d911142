"""Point the Colab set-up cells and the README's Colab links at another copy of the repository (a fork).

The address lives in one line of notebooks/_template.py (REPO_URL); every notebook's set-up cell is a
copy of that cell (tests/test_notebook_template.py) and the README's "Open in Colab" links are built
from it. This rewrites them all:
    python scripts/set_repo_url.py https://github.com/<you>/<your fork>
then commit and push. Without rewriting, SRACL_REPO_URL set in a Colab runtime overrides the address.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADDRESS = re.compile(r'REPO_URL = "https://github\.com/([^/"]+/[^/"]+)"')


def main():
    if len(sys.argv) != 2 or not re.fullmatch(r"https://github\.com/[^/]+/[^/]+", sys.argv[1].rstrip("/")):
        sys.exit("usage: python scripts/set_repo_url.py https://github.com/<owner>/<name>")
    new = sys.argv[1].rstrip("/").removesuffix(".git")[len("https://github.com/"):]
    old = ADDRESS.search((ROOT / "notebooks" / "_template.py").read_text()).group(1)
    files = [*sorted((ROOT / "notebooks").glob("*.py")), *sorted((ROOT / "notebooks").glob("*.ipynb")),
             ROOT / "README.md"]
    for path in files:
        text = path.read_text()
        text = text.replace(f"github.com/{old}", f"github.com/{new}")
        path.write_text(text.replace(f"google.com/github/{old}/", f"google.com/github/{new}/"))
    print(f"{old} -> {new} in {len(files)} files")


if __name__ == "__main__":
    main()
