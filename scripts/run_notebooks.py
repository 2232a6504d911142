"""Execute the numbered notebooks in order and store their outputs in the .ipynb twins.

The percent .py files are the source; each is turned into its paired .ipynb, executed with the
python3 kernel of this environment, and written back with outputs. Usage:
    python scripts/run_notebooks.py                 # all, 01..07
    python scripts/run_notebooks.py 04 05           # some, by number
Settings come from the notebooks' parameters cells, overridable with SRACL_* variables.
"""
import os
import sys
import time
from pathlib import Path

import jupytext
import nbclient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run(py_path: Path):
    notebook = jupytext.read(py_path)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = nbclient.NotebookClient(notebook, timeout=3600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    started = time.time()
    client.execute()
    jupytext.write(notebook, py_path.with_suffix(".ipynb"))
    jupytext.write(notebook, py_path, fmt="py:percent")  # keeps the pair's metadata identical
    return time.time() - started


def main(selected):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
    if selected:
        paths = [p for p in paths if p.name[:2] in selected]
        if not paths:
            sys.exit(f"no notebook numbered {selected} in {NOTEBOOKS}")
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        print(f"  done in {run(path):.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
