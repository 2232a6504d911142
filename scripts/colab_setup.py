"""Colab set-up, run by the first cell of every notebook: install what this runtime lacks.

Installs the requirements in requirements.txt that the runtime does not already satisfy, and the
offline assets of requirements-offline.txt without their dependencies (as scripts/setup.sh does).
The runtime's torch is never replaced and its numpy and pandas never downgraded (pip gets them as
constraints, and the versions are compared afterwards). Prints one line. Needs only the Python
standard library and `packaging`, which every Colab runtime has: the package itself is not
importable yet when this runs.
"""
import importlib.metadata as metadata
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
KEPT = {"torch": "==", "numpy": ">=", "pandas": ">="}   # the runtime's own: never replaced, never downgraded


def requirements(path: Path) -> list:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def installed(name: str):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def lacking(wanted: list) -> list:
    """The requirements this Python does not satisfy (absent, or at a version outside the range)."""
    return [r for r in wanted if installed(r.name) is None or not r.specifier.contains(installed(r.name), True)]


def pip(*args):
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *args], check=True)


def main():
    started = time.time()
    before = {name: installed(name) for name in KEPT}
    missing = lacking(requirements(ROOT / "requirements.txt"))
    assets = lacking(requirements(ROOT / "requirements-offline.txt"))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write("".join(f"{name}{KEPT[name]}{version}\n" for name, version in before.items() if version))
    if missing:
        pip("-c", constraints.name, *map(str, missing))
    if assets:
        pip("--no-deps", *map(str, assets))
    Path(constraints.name).unlink()
    after = {name: installed(name) for name in KEPT}
    changed = [f"{name} {before[name]} -> {after[name]}" for name in KEPT if before[name] and
               (after[name] != before[name] if KEPT[name] == "==" else Version(after[name]) < Version(before[name]))]
    if changed:
        sys.exit(f"colab_setup: the runtime's {', '.join(changed)}; restart the runtime and report this")
    names = [r.name for r in missing + assets]
    print(f"set up in {time.time() - started:.0f} s: installed {', '.join(names) if names else 'nothing'}; "
          f"kept the runtime's {', '.join(f'{name} {after[name]}' for name in KEPT if after[name])}")


if __name__ == "__main__":
    main()
