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
# Run notebooks 01..NN-1 first (they write the artefacts this one reads).

# %%
# Colab set-up: installs the project on Colab only; elsewhere this cell does nothing.
import os, subprocess, sys
if "google.colab" in sys.modules and not os.path.exists("/content/sracl-lite"):
    repo = os.environ.get("SRACL_REPO_URL", "https://github.com/sracl-lite/sracl-lite")
    subprocess.run(["git", "clone", "--depth", "1", repo, "/content/sracl-lite"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", "/content/sracl-lite/requirements.txt",
                    "-e", "/content/sracl-lite"], check=True)
    os.chdir("/content/sracl-lite/notebooks")

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
