"""SRA-CL Lite: the library behind the notebooks in notebooks/ (see README.md)."""
import warnings

# tqdm.auto warns, naming this machine's install path, when ipywidgets is missing; its text bars
# work without widgets, so the warning only clutters notebook outputs.
warnings.filterwarnings("ignore", message="IProgress not found")

__version__ = "0.1.0"
