# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # NN · Title
#
# **What you will learn**
# - one line per idea
#
# **Runtime**: about N min on a 2-core CPU with the defaults; M min on a GPU.
# Opened alone, it makes the files of the earlier notebooks it reads (see the cell after the
# parameters, and sracl_lite.notebook.NEEDS).

# %%
# Colab set-up: on Colab, fetch the project, install what the runtime lacks, import from the clone.
import os, subprocess, sys
REPO_URL = "https://github.com/sracl-lite/sracl-lite"  # a fork: python scripts/set_repo_url.py <its address>
if "google.colab" in sys.modules:
    root = os.path.join(os.environ.get("SRACL_COLAB_DIR", "/content"), "sracl-lite")
    if not os.path.exists(root):
        subprocess.run(["git", "clone", "-q", "--depth", "1", os.environ.get("SRACL_REPO_URL", REPO_URL), root],
                       check=True)
    subprocess.run([sys.executable, os.path.join(root, "scripts", "colab_setup.py")], check=True)
    if root not in sys.path:  # a running kernel never reads the .pth file that an editable install adds
        sys.path.insert(0, root)
    os.chdir(os.path.join(root, "notebooks"))

# %%
# Parameters: every value can be overridden with an environment variable SRACL_<NAME>.
from sracl_lite.notebook import param
DATASET = param("dataset", "ml-100k")
SEED = param("seed", 2024)

# %% [markdown]
# ## 1. First section
# Prose that explains; code that calls `sracl_lite`; a plot where a picture says it better.

# %% [markdown]
# ## Checks
# Plain asserts on real properties of what this notebook computed. `pytest --nbval` runs them.

# %%
# assert <a real property>, "<what went wrong and where to look>"

# %% [markdown]
# ## Results
# The key numbers of this run, recorded for the README and for notebook 07.
