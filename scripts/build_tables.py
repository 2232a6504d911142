"""Per-prefix semantic tables for the results grid's `reference` variants (results/README.md).

The authors embed each training prefix's text and retrieve its neighbours among all other
training prefixes. Here a prefix is embedded as the mean of its last max_len items' vectors, from
one source per table file (retrieval.reference_tables):
    llm_text       notebook 03's embeddings of the LLM's item profiles (needs notebooks 02-03)
    template_text  notebook 03's embeddings of the item attribute text (needs notebook 03)
    titles         the item titles, embedded here with notebook 03's sentence encoder
    collaborative  item factors of a truncated SVD of the training interactions (no text needed)
    random         no vectors: k uniformly random prefixes of other users (the ablation)
Each source is written with the reference's neighbour rule (`reference_<source>.npz`: the prefix
itself excluded, the user's other prefixes eligible) and, with --exclude-user, also without any
prefix of the anchor's user (`reference_<source>_user.npz`), under
<data dir>/processed/<dataset>/semantic/. --ablations SOURCE also writes the clean ablations of
`reference_<source>` (baselines.ablated_tables: `_randpool`, `_randsub`, `_norm20`), each changing
one part of the table.

    python scripts/build_tables.py --dataset ml-100k --sources llm_text template_text titles collaborative random \\
        --exclude-user llm_text
    python scripts/build_tables.py --dataset ids --data-path amazon_beauty_ids.txt \\
        --sources collaborative random --exclude-user collaborative --ablations collaborative
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sracl_lite import baselines as B  # noqa: E402
from sracl_lite import retrieval as R  # noqa: E402
from sracl_lite.data import load_dataset  # noqa: E402
from sracl_lite.semantic import SemanticTables  # noqa: E402

SOURCES = ("llm_text", "template_text", "titles", "collaborative", "random")


def item_vectors(source: str, ds, text_dir: Path, device: str):
    """(n_items + 1, d) item vectors of a source (row 0 padding); notebook 03's are read from text_dir
    (the whole dataset's folder: a sparse view has the same items and texts)."""
    if source in ("llm_text", "template_text"):
        path = R.tables_path(text_dir, source)
        if not path.exists():
            raise SystemExit(f"source {source!r} reads notebook 03's tables {path}, which do not exist: run "
                             f"notebook 03 for {ds.name} first ('llm_text' also needs notebook 02's profiles)")
        return SemanticTables.load(path).item_emb
    if source == "titles":
        from sracl_lite.encoder import EncoderConfig, TextEncoder, embed_items
        encoder = TextEncoder(EncoderConfig(device=device))
        return embed_items(encoder, ds.items["title"].reindex(range(1, ds.n_items + 1)), ds.n_items)
    return B.item_svd_embedding(ds.train_sequences, ds.n_items, 64)


def build(source: str, ds, text_dir: Path, k: int, window: int, exclude: str, device: str) -> SemanticTables:
    if source == "random":
        return B.random_neighbor_tables(ds.train_sequences, ds.n_items, R.prefix_pool(ds.train_sequences, whole=False),
                                        k=k)
    return R.reference_tables(item_vectors(source, ds, text_dir, device), ds.train_sequences, k, exclude, window,
                              description=f"{source} item vectors, mean over the last {window} items", device=device)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-100k", help="a built-in name, 'ids', or your own name")
    parser.add_argument("--data-path", help="--dataset ids: the file of 'user item' lines")
    parser.add_argument("--interactions", help="your own dataset: interactions CSV")
    parser.add_argument("--items", help="your own dataset: items CSV")
    parser.add_argument("--sources", nargs="+", default=["collaborative", "random"], choices=SOURCES)
    parser.add_argument("--exclude-user", nargs="*", default=[], choices=SOURCES[:-1],
                        help="sources also written without the anchor's own user's prefixes (random never has them)")
    parser.add_argument("--ablations", nargs="*", default=[], choices=SOURCES[:-1],
                        help="sources whose reference table (built now or before) also gets its clean ablations")
    parser.add_argument("--k", type=int, default=10, help="neighbours per prefix (reference 10)")
    parser.add_argument("--window", type=int, default=20, help="items averaged per prefix (reference max_len 20)")
    parser.add_argument("--train-last", type=int, metavar="N", help="the sparse view of results_grid.py --train-last N")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where the neighbour search runs")
    args = parser.parse_args(argv)
    if args.dataset == "ids" and not args.data_path:
        parser.error("--dataset ids needs --data-path")
    text_sources = [s for s in args.sources + args.exclude_user if s in ("llm_text", "template_text", "titles")]
    if args.dataset == "ids" and text_sources:
        parser.error(f"dataset 'ids' has no item text: {text_sources} cannot be built; use collaborative or random")
    kwargs = {"interactions_path": args.data_path or args.interactions, "items_path": args.items}
    ds = load_dataset(args.dataset, **{k: v for k, v in kwargs.items() if v})
    text_dir = ds.artefact_dir
    if args.train_last:
        ds = ds.training_tail(args.train_last)
    jobs = [(s, "rank0") for s in args.sources] + [(s, "user") for s in args.exclude_user]
    for source, exclude in jobs:
        started = time.perf_counter()
        tables = build(source, ds, text_dir, args.k, args.window, exclude, args.device)
        name = f"reference_{source}" + ("_user" if exclude == "user" else "")
        path = R.tables_path(ds.artefact_dir, name)
        tables.save(path)
        print(f"{name}: {len(tables.pool_users):,} prefixes, k={args.k}, {time.perf_counter() - started:.0f} s -> "
              f"{path.relative_to(ds.artefact_dir.parent.parent)}", flush=True)
    for source in args.ablations:
        path = R.tables_path(ds.artefact_dir, f"reference_{source}")
        if not path.exists():
            raise SystemExit(f"--ablations {source} reads {path}, which does not exist: add --sources {source}")
        for ablation in B.ABLATIONS:
            out = R.tables_path(ds.artefact_dir, f"reference_{source}_{ablation}")
            B.ablated_tables(SemanticTables.load(path), ablation).save(out)
            print(f"reference_{source}_{ablation} -> {out.relative_to(ds.artefact_dir.parent.parent)}", flush=True)


if __name__ == "__main__":
    main()
