"""Run notebooks as a Colab user meets them: each alone, on a fresh runtime, from its stored .ipynb.

For each notebook named, a simulated fresh Colab runtime: a new virtual environment that sees only
the runtime's preinstalled packages (torch, numpy, pandas, matplotlib, ipykernel, as Colab ships
them; made once, in build/colab/runtime), a `google.colab` module imported when the kernel starts,
an empty working folder standing in for /content, and SRACL_REPO_URL pointing at a clone of this
repository's committed HEAD. The stored notebook then runs top to bottom in that kernel: its set-up
cell clones and installs, and the notebook makes whatever earlier notebooks' files it reads. A
notebook passes when it prints "all checks passed". With --compare, the notebooks it reads and
itself then run in order on another fresh runtime (the same packages), and the files of the run
alone (semantic tables, saved runs) must equal theirs bit for bit.

Usage (from the repository root, commit first: the runtime clones HEAD):
    .venv/bin/python scripts/colab_check.py 01 02 03 04 05 06 07
    .venv/bin/python scripts/colab_check.py 05 --compare
Needs the package registry (the set-up cell installs from it) and about 3 GB of disk per notebook.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jupytext

from run_notebooks import execute, failure_line  # scripts/, the folder of this script
from sracl_lite.notebook import earlier_notebooks  # run_notebooks put the checkout on sys.path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "colab"
# The runtime's own packages, at the versions a Colab runtime had when this was written (torch is this
# machine's build: a Colab GPU runtime has a CUDA build of another version).
PREINSTALLED = ["torch==2.13.0", "numpy==2.0.2", "pandas==2.2.2", "matplotlib==3.10.0", "ipykernel==6.17.1",
                "packaging"]


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def make_runtime(path: Path) -> Path:
    """The preinstalled packages, in a virtual environment made once and reused (Colab's image)."""
    if not (path / "ready").exists():
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *PREINSTALLED], check=True)
        (path / "ready").write_text("\n".join(PREINSTALLED) + "\n")
    return path


def fresh_runtime(folder: Path, runtime: Path) -> Path:
    """A new virtual environment that sees the runtime's packages, a google.colab module and a
    kernel spec that imports it at start, as Colab's kernel does."""
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    packages = site_packages(venv)
    (packages / "colab_runtime.pth").write_text(str(site_packages(runtime)) + "\n")
    (packages / "google" / "colab").mkdir(parents=True)
    (packages / "google" / "colab" / "__init__.py").write_text('"""Stands in for Colab\'s module."""\n')
    spec = folder / "kernels" / "colab"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.exec_lines=import google.colab"],
        "display_name": "Colab (simulated)", "language": "python",
        "env": {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}}))
    return spec.parent


def run_notebooks(numbers: list, runtime: Path, repo: str, folder: Path) -> tuple:
    """Execute stored notebooks one after the other on one fresh runtime, each in its own kernel, as
    a Colab user who opens them in turn. Returns (seconds, error or None, content folder)."""
    content = folder / "content"
    content.mkdir(parents=True)
    kernels = fresh_runtime(folder, runtime)
    os.environ.update(SRACL_REPO_URL=repo, SRACL_COLAB_DIR=str(content))
    started, error = time.time(), None
    for number in numbers:
        stored = next((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
        notebook = jupytext.read(stored)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs = []
        failure = execute(notebook, content, "colab", [str(kernels)])
        if failure:
            error = f"{number}: {failure_line(notebook, failure)}"
        jupytext.write(notebook, folder / stored.name)
        text = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
        if error is None and "all checks passed" not in text:
            error = f'{number}: no "all checks passed" in its output'
        for line in text.splitlines():
            if line.startswith(("set up in", "running notebook", "files of notebook")):
                print(f"  {number}: {line}")
        if error:
            break
    return time.time() - started, error, content


def digest(data: Path) -> dict:
    """What the notebooks made, for the comparison: each semantic table file's bytes, and each saved
    run's metrics, ranks and best epoch (its timings and history differ run to run)."""
    found = {}
    for path in sorted(data.glob("processed/*/semantic/*")):
        found[str(path.relative_to(data))] = hashlib.sha256(path.read_bytes()).hexdigest()
    for path in sorted(data.glob("processed/*/metrics/*.json")):
        run = json.loads(path.read_text())
        kept = {k: run.get(k) for k in ("valid", "test", "valid_ranks", "test_ranks", "best_epoch")}
        found[str(path.relative_to(data))] = hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", help="numbers, e.g. 01 05")
    parser.add_argument("--repo", default=f"file://{ROOT}", help="what the set-up cell clones (default: this checkout)")
    parser.add_argument("--compare", action="store_true",
                        help="also run, on one more fresh runtime, the notebooks each one reads and itself in order, "
                             "and require the files of the run alone to equal theirs bit for bit")
    parser.add_argument("--keep", action="store_true", help="keep each runtime's folder under build/colab/")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    runtime = make_runtime(BUILD / "runtime")
    failed = []
    for number in args.notebooks:
        work = Path(tempfile.mkdtemp(prefix=f"alone-{number}-", dir=BUILD))
        print(f"{number}: alone, on a fresh runtime ...", flush=True)
        seconds, error, content = run_notebooks([number], runtime, args.repo, work / "alone")
        if error is None and args.compare:
            in_order = [*earlier_notebooks(number), number]
            print(f"{number}: notebooks {', '.join(in_order)} in order, on another fresh runtime ...", flush=True)
            _, error, reference = run_notebooks(in_order, runtime, args.repo, work / "in-order")
            if error is None:
                made, wanted = digest(content / "sracl-lite" / "data"), digest(reference / "sracl-lite" / "data")
                differ = sorted(k for k in set(made) | set(wanted) if made.get(k) != wanted.get(k))
                print(f"  {len(made) - len(differ)} of {len(made)} files equal to those made in order")
                error = f"files differ from those made in order: {', '.join(differ)}" if differ else None
        print(f"{number}: {'passed' if error is None else 'FAILED: ' + error} ({seconds:.0f} s alone)", flush=True)
        failed += [number] if error else []
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{len(args.notebooks) - len(failed)} of {len(args.notebooks)} notebooks passed alone on a fresh runtime")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
