"""Execute the numbered notebooks in order.

The percent .py files are the source; each is turned into a notebook and executed with the
python3 kernel of this environment. Usage:
    python scripts/run_notebooks.py                 # all, 01..07, into build/notebooks/
    python scripts/run_notebooks.py 04 05           # some, by number
    python scripts/run_notebooks.py --update        # write the stored notebooks/*.ipynb instead
By default executed notebooks go to build/notebooks/ (git-ignored), so a run leaves the
repository as it was; --update replaces the stored outputs that the tests compare against.
Settings come from the notebooks' parameters cells, overridable with SRACL_* variables; your own
data, for example (README, "Use your own data"):
    SRACL_DATASET=my-shop SRACL_INTERACTIONS=interactions.csv SRACL_ITEMS=items.csv \
        python scripts/run_notebooks.py
A failed notebook is reported in one line (its failing cell and error); the script goes on with
the next one and exits non-zero at the end.
"""
import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbclient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from sracl_lite.notebook import NOTEBOOK_PARAMETERS, check_variables  # noqa: E402

FILE_VARIABLES = ["SRACL_INTERACTIONS", "SRACL_ITEMS", "SRACL_DATA_DIR", "SRACL_RESULTS_DIR", "SRACL_PROFILE_DIR"]
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "build" / "notebooks"
# Terminal control in progress-bar output: cursor up, other escape sequences, carriage return, newline.
ANSI = re.compile(r"\x1b\[[0-9;]*m")
STREAM_TOKEN = re.compile(r"\x1b\[A|\x1b\[[0-9;]*[A-Za-z]|\r|\n|[^\r\n\x1b]+")


def clean_stream(text: str) -> str:
    """What a terminal shows at the end instead of every progress-bar refresh: carriage
    returns overwrite their line, cursor-up moves to the line above (nested bars), bars cleared
    on close (blank lines) disappear."""
    lines, row, overwrite = [""], 0, True
    for token in STREAM_TOKEN.findall(text):
        if token == "\n":
            row += 1
            if row == len(lines):
                lines.append("")
            overwrite = True
        elif token == "\r":
            overwrite = True
        elif token == "\x1b[A":
            row = max(0, row - 1)
        elif not token.startswith("\x1b"):
            lines[row] = token if overwrite else lines[row] + token
            overwrite = False
    kept = [line.rstrip() for line in lines if line.strip()]
    return "\n".join(kept) + "\n" if kept else ""


def coalesce_streams(notebook):
    """Merge each cell's consecutive stderr outputs and clean them (see clean_stream); stdout,
    which the tests compare, is kept as it is."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        merged = []
        for output in cell.outputs:
            if (output.output_type == "stream" and output.name == "stderr" and merged
                    and merged[-1].output_type == "stream" and merged[-1].name == "stderr"):
                merged[-1].text += output.text
            else:
                merged.append(output)
        for output in merged:
            if output.output_type == "stream" and output.name == "stderr":
                output.text = clean_stream(output.text)
        cell.outputs = [o for o in merged if o.output_type != "stream" or o.text]


def failure_line(notebook, error: CellExecutionError) -> str:
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    failed = next((n for n, c in enumerate(code_cells, 1)
                   if any(o.output_type == "error" for o in c.get("outputs", []))), None)
    where = f"code cell {failed}" if failed else "a cell"
    message = str(error.evalue).strip().splitlines()[-1] if str(error.evalue).strip() else ""
    if not message:  # a bare assert: name the failing line instead
        lines = [ANSI.sub("", line) for line in str(error).splitlines()]
        marked = [line.split(maxsplit=2)[-1] for line in lines if re.match(r"\s*-+> ", line)]
        message = f"at `{marked[-1].strip()}`" if marked else "(no message)"
    return f"{where}: {error.ename}: {message}"


def execute(notebook, cwd: Path, kernel_name: str = "python3", kernel_dirs=None):
    """Run every cell of `notebook` in a fresh kernel started in `cwd` (the kernel spec from `kernel_dirs`
    when given, scripts/colab_check.py's simulated runtime); returns the CellExecutionError or None."""
    # The kernel talks over local sockets in a temporary folder (TCP would warn that it is unencrypted).
    with tempfile.TemporaryDirectory() as sockets:
        specs = {"kernel_spec_manager": KernelSpecManager(kernel_dirs=kernel_dirs)} if kernel_dirs else {}
        kernel = KernelManager(kernel_name=kernel_name, transport="ipc", ip=str(Path(sockets) / "kernel"), **specs)
        client = nbclient.NotebookClient(notebook, km=kernel, timeout=3600, kernel_name=kernel_name,
                                         resources={"metadata": {"path": str(cwd)}})
        try:
            client.execute()
        except CellExecutionError as e:
            return e
        finally:
            if kernel.has_kernel:  # a kernel manager passed in is not shut down by the client
                kernel.shutdown_kernel(now=True)
    return None


def run(py_path: Path, out_dir: Path, update: bool):
    """Execute one notebook; returns (seconds, None) or (seconds, one-line error)."""
    notebook = jupytext.read(py_path)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    started = time.time()
    failure = execute(notebook, NOTEBOOKS)
    error = failure_line(notebook, failure) if failure else None
    coalesce_streams(notebook)
    if update and error is None:
        jupytext.write(notebook, py_path.with_suffix(".ipynb"))
        jupytext.write(notebook, py_path, fmt="py:percent")  # keeps the pair's metadata identical
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        jupytext.write(notebook, out_dir / py_path.with_suffix(".ipynb").name)
    return time.time() - started, error


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("numbers", nargs="*", help="notebook numbers, e.g. 01 04; default all")
    parser.add_argument("--update", action="store_true",
                        help="write outputs into notebooks/*.ipynb (the stored run the tests compare against)")
    parser.add_argument("--out", type=Path, default=BUILD, help=f"folder for executed notebooks (default {BUILD})")
    args = parser.parse_args(argv)
    check_variables()
    overridden = sorted(v for v in os.environ if v.startswith("SRACL_") and v[6:].lower() in NOTEBOOK_PARAMETERS)
    if args.update and overridden:
        sys.exit(f"--update stores the default run; unset {', '.join(overridden)} or leave out --update")
    for name in FILE_VARIABLES:  # kernels run in notebooks/: a path relative to here must still work
        if os.environ.get(name):
            os.environ[name] = str(Path(os.environ[name]).expanduser().resolve())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # Progress bars refresh at most every 30 s: a stored notebook keeps their final state, not every step.
    os.environ.setdefault("TQDM_MININTERVAL", "30")
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
    if args.numbers:
        paths = [p for p in paths if p.name[:2] in args.numbers]
        if not paths:
            sys.exit(f"no notebook numbered {args.numbers} in {NOTEBOOKS}")
    failed = []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        seconds, error = run(path, args.out, args.update)
        if error:
            failed.append(path.name)
            executed = os.path.relpath(args.out / path.with_suffix(".ipynb").name)
            print(f"  FAILED after {seconds:.0f} s: {path.name}, {error} (executed notebook: {executed})", flush=True)
        else:
            print(f"  done in {seconds:.0f} s", flush=True)
    where = "notebooks/*.ipynb (stored outputs)" if args.update else os.path.relpath(args.out)
    if failed:
        sys.exit(f"{len(failed)} of {len(paths)} notebooks failed: {', '.join(failed)}")
    print(f"all {len(paths)} notebooks ran; outputs in {where}")


if __name__ == "__main__":
    main()
