"""Draw SRA-CL in one figure: what is built once before training, what one training step computes,
and, in the dark tag on each box, the notebook that builds that part.

    python scripts/draw_method.py                     # writes docs/sracl_method.svg
    python scripts/draw_method.py --out /tmp/fig.png  # any format matplotlib writes, e.g. to look at it

With the same matplotlib version the SVG comes out byte for byte the same (no date, fixed ids);
tests/test_method_figure.py checks it against the committed file.
"""
import argparse
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

ROOT = Path(__file__).resolve().parents[1]
W, H = 13.7, 6.0  # inches, one data unit per inch
# Okabe-Ito colours, told apart under every common colour-vision deficiency; light fills keep black text readable.
ORANGE, VERMILLION, SKY, BLUE, GREEN, PURPLE = "#E69F00", "#D55E00", "#56B4E9", "#0072B2", "#009E73", "#CC79A7"
INK, BODY, TITLE = "#333333", 12, 13


def tint(color, amount=0.22):
    return tuple(1 - amount * (1 - c) for c in matplotlib.colors.to_rgb(color))


def box(ax, x, y, w, h, title, body, tag, color):
    """A box with a bold title, its text and, on its top edge, a tag naming the notebook that builds it."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.08", fc=tint(color), ec=color,
                                lw=2))
    ax.text(x + 0.1, y + h - 0.14, title, fontsize=TITLE, weight="bold", va="top", linespacing=1.15)
    ax.text(x + 0.1, y + h - 0.2 - 0.26 * (title.count("\n") + 1), body, fontsize=BODY, va="top", linespacing=1.35)
    ax.text(x + w - 0.08, y + h, tag, fontsize=11, weight="bold", color="white", ha="right", va="center",
            bbox=dict(boxstyle="round,pad=0.25,rounding_size=0.2", fc=INK, ec="none"))
    return dict(left=(x, y + h / 2), right=(x + w, y + h / 2), top=(x + w / 2, y + h), bottom=(x + w / 2, y))


def arrow(ax, start, end):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=16, lw=1.6, color=INK,
                                 shrinkA=2, shrinkB=2))


def band(ax, x, w, label):
    ax.add_patch(FancyBboxPatch((x, 0.1), w, H - 0.2, boxstyle="round,pad=0,rounding_size=0.12", fc="#F4F4F4",
                                ec="#BBBBBB", lw=1))
    ax.text(x + 0.15, H - 0.22, label, fontsize=TITLE, weight="bold", color="#555555", va="top")


def draw():
    fig = plt.figure(figsize=(W, H))
    ax = fig.add_axes((0, 0, 1, 1), xlim=(0, W), ylim=(0, H))
    ax.set_axis_off()
    band(ax, 0.1, 7.4, "Built once, before training, from training data only")
    band(ax, 7.65, W - 7.75, "Trained together, in every step")

    data = box(ax, 0.25, 2.1, 1.5, 1.9, "Interactions", "user histories\nin time order;\nleave-one-out\nsplit; "
               "training\nprefixes", "nb 01", ORANGE)
    llm = box(ax, 2.05, 2.1, 1.65, 1.9, "LLM profiles", "an LLM writes\nitem summaries\nand user (or\nprefix) "
              "profiles", "nb 02", VERMILLION)
    enc = box(ax, 4.0, 2.1, 1.35, 1.9, "Sentence\nencoder", "each text\nbecomes an\nembedding $s$", "nb 03", SKY)
    users = box(ax, 5.65, 3.1, 1.7, 1.6, "Similar users", "top-$k$ profiles\nby cosine: $k$\ncandidate\nsequences",
                "nb 03", SKY)
    items = box(ax, 5.65, 1.0, 1.7, 1.6, "Similar items", "top-$k$ items\nper item, to\nsubstitute", "nb 03", SKY)
    sasrec = box(ax, 7.85, 2.1, 1.45, 1.9, "SASRec", "one backbone\nencodes the\nanchor, its\ncandidates\n"
                 "and views: $h$", "nb 04", BLUE)
    rec = box(ax, 9.6, 4.1, 2.3, 1.05, "Next-item loss", "$L_{rec}$: cross-entropy\nover all items", "nb 04", BLUE)
    cross = box(ax, 9.6, 1.85, 2.3, 1.95, "Cross-sequence CL", "sample synthesizer:\nattention on $s$ mixes\n"
                "the candidates' $h_j$\ninto a positive $\\tilde h$;\n$L_{cross}$: InfoNCE / NT-Xent",
                "nb 05", GREEN)
    intra = box(ax, 9.6, 0.3, 2.3, 1.25, "Intra-sequence CL", "views: items swapped\nfor similar ones;\n"
                "$L_{intra}$: NT-Xent", "nb 06", PURPLE)
    total = box(ax, 12.15, 1.85, 1.3, 1.95, "Total loss", "$L = L_{rec}$\n$+\\ \\alpha\\, L_{cross}$\n"
                "$+\\ \\beta\\, L_{intra}$\n$\\alpha = \\beta = 0.1$", "nb 06", GREEN)
    infer = box(ax, 7.8, 0.3, 1.55, 1.25, "Inference", "the backbone\nalone scores\nevery item", "nb 04", BLUE)

    ax.text(0.3, 0.45, "nb 0N: the notebook that builds the part", fontsize=BODY, style="italic")
    arrow(ax, data["right"], llm["left"])
    arrow(ax, llm["right"], enc["left"])
    for found in (users, items):
        arrow(ax, enc["right"], found["left"])
        arrow(ax, found["right"], sasrec["left"])
    x0, x1 = data["top"][0] - 0.2, sasrec["top"][0]  # the anchors themselves go straight to SASRec
    ax.plot([x0, x0, x1], [4.0, 5.15, 5.15], color=INK, lw=1.6)
    arrow(ax, (x1, 5.15), sasrec["top"])
    ax.text(3.4, 5.3, "anchor sequences (training prefixes)", fontsize=BODY, ha="center", style="italic")
    for loss in (rec, cross, intra):
        arrow(ax, sasrec["right"], loss["left"])
        arrow(ax, loss["right"], total["left"])
    arrow(ax, sasrec["bottom"], infer["top"])
    return fig


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "sracl_method.svg"), help="where to write the figure")
    out = Path(parser.parse_args().out)
    plt.rcParams["svg.hashsalt"] = "sracl-method"  # fixed ids, so that the SVG's bytes do not change between runs
    out.parent.mkdir(parents=True, exist_ok=True)
    draw().savefig(out, metadata={"Date": None} if out.suffix == ".svg" else None)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
