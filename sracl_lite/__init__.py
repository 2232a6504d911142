"""SRA-CL Lite: the library behind the notebooks in notebooks/ (see README.md)."""
import ctypes
import sys
import warnings

# tqdm.auto warns, naming this machine's install path, when ipywidgets is missing; its text bars
# work without widgets, so the warning only clutters notebook outputs.
warnings.filterwarnings("ignore", message="IProgress not found")

__version__ = "0.1.0"


def reuse_freed_memory() -> bool:
    """Let large CPU tensors reuse memory freed by earlier ones (Linux with glibc; True if set).

    glibc gives every block above 32 MB (a 71,680 x 256 float32 activation of a CPU training step
    is 73 MB) pages of its own and hands them back on free, so the next such tensor faults in fresh
    pages. Keeping freed blocks in the heap changes no number; a 71,680 x 64 by 64 x 256 matrix product
    took 23-26 ms instead of 37 ms (benchmarks/README.md, "CPU time of the tutorial and its tests").
    The process then keeps its peak memory until it ends. A glibc that refuses the thresholds (older
    ones cap the first at 32 MB) returns False and nothing changes."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # another C library (musl, say): leave it as it is
        return False
    trim_threshold, mmap_threshold = -1, -3  # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD in malloc.h
    return bool(mallopt(mmap_threshold, 1 << 30)) and bool(mallopt(trim_threshold, (1 << 31) - 1))


reuse_freed_memory()
