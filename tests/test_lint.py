"""The code meets the linter configuration in pyproject.toml (ruff: pyflakes, pycodestyle, 120 columns)."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, f"ruff check failed:\n{done.stdout}{done.stderr}"


def test_modules_stay_small():
    sizes = {p.name: len(p.read_text().splitlines()) for p in (REPO / "sracl_lite").glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 350} == {}, "split a module along its seams"
