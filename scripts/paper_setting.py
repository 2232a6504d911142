"""The paper's own setting in one command: an Amazon 2014 category, LLM item summaries and one LLM
profile per training prefix from any OpenAI-compatible endpoint, SimCSE embeddings, the reference
tables, the reference grid and its verdicts (README, "The paper's setting").

Stages, in order; each skips what is already done, so a stopped command, run again, goes on:
  data    download the SNAP files (reviews 5-core + metadata) and build the dataset (notebook 01)
  llm     ask the endpoint for every item summary and every training prefix's profile (notebook 02).
          First it asks a sample of --sample prompts to measure the endpoint, prints the number of
          prompts, the tokens and the time that the rest will take, and stops unless --yes is given.
          Answers are cached one by one as they arrive: a stopped run never asks a prompt twice.
  embed   embed the answers (the authors: princeton-nlp/sup-simcse-roberta-large, its pooler_output)
  tables  the reference tables from them: per-prefix neighbours (the prefix itself excluded, and with
          the user's own prefixes excluded), the clean ablations, and the other sources of the grid
          (attribute text, titles, collaborative, random)
  grid    scripts/results_grid.py on the reference variants of notebook 07's questions: --seeds-primary
          for the primary question's variants, --seeds-other for the rest, then the cosine variant and
          the variant best on validation (both judged on their first --seeds-other seeds) topped up to
          --seeds-primary
  report  notebook 07's decisions for this dataset, and notebook 07 itself with it as a regime

    DEEPSEEK_API_KEY=... python scripts/paper_setting.py --dataset amazon-beauty --device cuda
    DEEPSEEK_API_KEY=... python scripts/paper_setting.py --dataset amazon-beauty --device cuda --yes

The authors' prompts had a system message and no length cap; ours are notebook 02's (one user
message, --max-new-tokens). benchmarks/paper_rehearsal.py runs every stage at Beauty's size against
local endpoints, with a small encoder standing in for SimCSE.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sracl_lite import baselines as B  # noqa: E402
from sracl_lite import evaluation as E  # noqa: E402
from sracl_lite import paths, profiling, report  # noqa: E402
from sracl_lite import retrieval as R  # noqa: E402
from sracl_lite.data import load_dataset  # noqa: E402
from sracl_lite.experiments import VARIANTS  # noqa: E402
from sracl_lite.llm import LLMSettings, OpenAIBackend  # noqa: E402
from sracl_lite.prompts import PromptConfig, item_prompts, template_item_texts, user_prompts  # noqa: E402
from sracl_lite.sources import AMAZON_CATEGORIES  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
import results_grid  # noqa: E402

STAGES = ("data", "llm", "embed", "tables", "grid", "report")
SIMCSE = "princeton-nlp/sup-simcse-roberta-large"
PRIMARY = ["ref_sasrec", "ref_llm", "ref_cl4srec", "ref_duorec"]
# Every variant a question of notebook 07 needs where items have text (report.reference_comparisons).
GRID = PRIMARY + sorted({v for pair in report.reference_comparisons("ref_llm") for v in pair[:2]} - set(PRIMARY)
                        | {v for v in VARIANTS if v.startswith("ref_llm_cos")})


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="amazon-beauty", choices=sorted(AMAZON_CATEGORIES))
    p.add_argument("--data-dir", help="data folder (default: $SRACL_DATA_DIR or the repository's data/)")
    p.add_argument("--results-dir", default=str(paths.RESULTS), help="where the grid's CSV and ranks go")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma list of {', '.join(STAGES)}")
    g = p.add_argument_group("llm")
    g.add_argument("--base-url", default="https://api.deepseek.com/v1", help="OpenAI-compatible endpoint")
    g.add_argument("--model", default="deepseek-chat", help="the endpoint's model name (the authors': deepseek-chat)")
    g.add_argument("--api-key-env", default="DEEPSEEK_API_KEY", help="environment variable holding the key")
    g.add_argument("--concurrency", type=int, default=16)
    g.add_argument("--requests-per-minute", type=float, help="the endpoint's rate limit (default: none)")
    g.add_argument("--timeout-s", type=float, default=120.0, help="seconds to wait for one answer before retrying")
    g.add_argument("--max-new-tokens", type=int, default=256, help="answers are asked for at most 100 words")
    g.add_argument("--temperature", type=float, default=0.0, help="the authors' 0.0")
    g.add_argument("--sample", type=int, default=16, help="prompts asked first to measure the endpoint")
    g.add_argument("--yes", action="store_true", help="ask every remaining prompt after the estimate")
    g = p.add_argument_group("embed, tables")
    g.add_argument("--encoder", default=SIMCSE, help="transformers or sentence-transformers model id or folder")
    g.add_argument("--pooling", choices=["pooler", "model"], default="pooler",
                   help="pooler: pooler_output, unnormalised (the authors' SimCSE); model: the "
                        "sentence-transformers model's own pooling, unit length")
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--device", default="auto", help="auto, cpu or cuda")
    g.add_argument("--k", type=int, default=10)
    g = p.add_argument_group("grid")
    g.add_argument("--variants", nargs="+", default=GRID, help="reference variants to train")
    g.add_argument("--seeds-primary", type=int, default=10)
    g.add_argument("--seeds-other", type=int, default=5)
    g.add_argument("--workers", type=int, default=4, help="runs sharing the device")
    g.add_argument("--grid-args", default="", help="more results_grid.py options, e.g. '--epochs 1' for a "
                   "rehearsal (its rows then record the changed budget)")
    g.add_argument("--no-notebook", action="store_true", help="report: print the decisions, skip notebook 07")
    return p.parse_args(argv)


def stage_data(args):
    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    pool = R.prefix_pool(ds.train_sequences, whole=False)
    print(f"{ds.name}: {ds.n_users:,} users, {ds.n_items:,} items, {ds.stats['interactions']:,} interactions, "
          f"{len(pool):,} training prefixes")
    return ds


def all_prompts(ds):
    """(item id -> prompt, (user, length) -> prompt) for every item and every training prefix."""
    keys = R.prefix_pool(ds.train_sequences, whole=False).keys()
    by_prefix = user_prompts(ds, PromptConfig(), "prefix")
    return item_prompts(ds, PromptConfig()), {key: by_prefix[key] for key in keys}


def llm_backend(args):
    settings = LLMSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    return OpenAIBackend(args.model, base_url=args.base_url, api_key_env=args.api_key_env, settings=settings,
                         concurrency=args.concurrency, requests_per_minute=args.requests_per_minute,
                         timeout_s=args.timeout_s)


def profile_folder(args, ds, backend) -> Path:
    folder = profiling.profile_dir(args.dataset, backend, root=paths.profiles_dir(override=args.data_dir))
    profiling.write_prompt_settings(folder, ds, PromptConfig(), backend)
    return folder


def stage_llm(args, ds):
    backend = llm_backend(args)
    folder = profile_folder(args, ds, backend)
    jobs = list(zip(("items", "users"), all_prompts(ds)))
    # Counted as distinct texts: prefixes with the same history (say, one first item) share a prompt.
    distinct = {kind: len(set(prompts.values())) for kind, prompts in jobs}
    todo = {kind: distinct[kind] - profiling.count_cached(prompts, folder / f"{kind}.jsonl", backend)
            for kind, prompts in jobs}
    print(f"{sum(distinct.values()):,} distinct prompts ({distinct['items']:,} for the items, {distinct['users']:,} "
          f"for the {len(jobs[1][1]):,} training prefixes), {sum(distinct.values()) - sum(todo.values()):,} "
          f"answered before -> {folder}")
    if not sum(todo.values()):
        return
    if not args.yes:
        estimate(args, backend, folder, jobs, todo)
        raise SystemExit("not asked: run again with --yes to ask them (answers already given are kept)")
    for kind, prompts in jobs:
        started = time.time()
        profiling.generate_cached(prompts, backend, folder / f"{kind}.jsonl", desc=kind)
        print(f"{kind}: {todo[kind]:,} asked in {time.time() - started:.0f} s")


def estimate(args, backend, folder, jobs, todo):
    """Ask max(--sample, --concurrency) unanswered prompts (the endpoint at full concurrency), kept in the
    cache, and print the tokens and hours the rest will take at that rate."""
    kind, prompts = next((kind, prompts) for kind, prompts in reversed(jobs) if todo[kind])
    cache = profiling.AnswerCache(folder / f"{kind}.jsonl", backend.model_id, backend.settings)
    unasked = list(dict.fromkeys(p for p in prompts.values() if cache.get(p) is None))
    cache.close()
    sample = dict(enumerate(unasked[:max(args.sample, args.concurrency)]))
    started = time.time()
    profiling.generate_cached(sample, backend, folder / f"{kind}.jsonl", progress=False)
    seconds, n = time.time() - started, len(sample)
    left = sum(todo.values()) - n
    prompt_tokens = backend.prompt_tokens / n or np.mean([len(p) for p in sample.values()]) / 4
    print(f"measured on {n} {kind} prompts at concurrency {args.concurrency}: {n / seconds:.2f} answers/s, "
          f"{prompt_tokens:.0f} prompt and {backend.generated_tokens / n:.0f} answer tokens each"
          + ("" if backend.prompt_tokens else " (prompt tokens guessed as characters / 4: no usage returned)"))
    print(f"the other {left:,} prompts: about {left * prompt_tokens / 1e6:.1f}M prompt tokens, "
          f"{left * backend.generated_tokens / n / 1e6:.1f}M answer tokens, {left * seconds / n / 3600:.1f} h "
          "at this rate")


def answers(args, ds):
    """(item id -> summary, (user, length) -> profile), every one answered, or an error naming the stage."""
    folder = profile_folder(args, ds, llm_backend(args))
    try:
        return tuple(profiling.load_cached(prompts, folder / f"{kind}.jsonl")
                     for kind, prompts in zip(("items", "users"), all_prompts(ds)))
    except (FileNotFoundError, KeyError) as error:
        raise SystemExit(f"{error}\nrun the llm stage first (--stages llm --yes), with the same endpoint and "
                         "model: their answers are kept apart by model") from None


def embeddings_path(args, ds) -> Path:
    return ds.artefact_dir / "paper" / "embeddings.npz"


def stage_embed(args, ds):
    from sracl_lite.encoder import EncoderConfig, TextEncoder
    items, profiles = answers(args, ds)
    pool = R.prefix_pool(ds.train_sequences, whole=False)
    texts = {"items": [items[i] for i in range(1, ds.n_items + 1)], "pool": [profiles[k] for k in pool.keys()],
             "template": list(template_item_texts(ds).values()), "titles": ds.titles(range(1, ds.n_items + 1))}
    config = EncoderConfig(model_id=args.encoder, device=args.device, batch_size=args.batch_size,
                           pooler_output=args.pooling == "pooler",
                           cache_dir=paths.data_dir(args.data_dir) / "processed" / "embedding_cache")
    encoder = TextEncoder(config)
    key = hashlib.blake2b(json.dumps([encoder.model_id, texts]).encode(), digest_size=8).hexdigest()
    path = embeddings_path(args, ds)
    if path.exists() and str(np.load(path)["key"]) == key:
        print(f"embeddings of these {sum(map(len, texts.values())):,} texts by {encoder.model_id} found: {path}")
        return
    vectors = {}
    for part, part_texts in texts.items():
        started = time.time()
        vectors[part] = encoder.encode(part_texts)
        if part != "pool":  # item vectors: row 0 is padding
            vectors[part] = np.vstack([np.zeros((1, vectors[part].shape[1]), np.float32), vectors[part]])
        print(f"{part}: {len(part_texts):,} texts, {encoder.last_encoded:,} encoded in {time.time() - started:.0f} s")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, key=np.array(key), model_id=np.array(encoder.model_id), **vectors)


def stage_tables(args, ds):
    path = embeddings_path(args, ds)
    if not path.exists():
        raise SystemExit(f"{path} not found: run the embed stage first")
    vectors = dict(np.load(path))
    key = f"{vectors['key']}-k{args.k}"
    done = ds.artefact_dir / "semantic" / "paper_tables.json"
    if done.exists() and json.loads(done.read_text()).get("key") == key:
        print(f"tables of these embeddings found: {done.parent}")
        return
    pool = R.prefix_pool(ds.train_sequences, whole=False)
    what = f"per-prefix LLM profiles and item summaries, {vectors['model_id']}"
    tables = {f"reference_llm_text{suffix}": R.prefix_tables(vectors["items"], pool, vectors["pool"], args.k,
                                                              exclude, what, args.device)
              for suffix, exclude in (("", "rank0"), ("_user", "user"))}
    tables.update({f"reference_llm_text_{a}": B.ablated_tables(tables["reference_llm_text"], a) for a in B.ABLATIONS})
    for source, part in (("template_text", "template"), ("titles", "titles")):
        tables[f"reference_{source}"] = R.reference_tables(
            vectors[part], ds.train_sequences, args.k, device=args.device,
            description=f"{source} item vectors, {vectors['model_id']}")
    tables["reference_collaborative"] = R.reference_tables(
        B.item_svd_embedding(ds.train_sequences, ds.n_items, 64), ds.train_sequences, args.k, device=args.device,
        description="collaborative (SVD) item vectors")
    tables["reference_random"] = B.random_neighbor_tables(ds.train_sequences, ds.n_items, pool, k=args.k)
    for name, table in tables.items():
        table.save(R.tables_path(ds.artefact_dir, name))
    done.write_text(json.dumps({"key": key, "tables": sorted(tables)}, indent=1) + "\n")
    print(f"{len(tables)} tables -> {done.parent}")


def grid_arguments(args, variants, seeds) -> list:
    return ["--dataset", args.dataset, "--variants", *variants, "--seeds", *map(str, range(1, seeds + 1)),
            "--profile", "paper", "--device", args.device, "--workers", str(args.workers), "--out",
            args.results_dir, *args.grid_args.split()]


def run_grid(args, variants, seeds):
    """scripts/results_grid.py in this process (a new one would spend seconds importing torch again)."""
    if not variants:
        return
    before = dict(os.environ)   # the grid's variables (its data folder, its compile threads) stay its own
    os.environ["SRACL_DATA_DIR"] = str(paths.data_dir(args.data_dir))   # where the grid reads the tables
    try:
        failed = results_grid.main(grid_arguments(args, variants, seeds))
    finally:
        os.environ.clear()
        os.environ.update(before)
    if failed:
        raise SystemExit(f"the grid of {', '.join(variants)} had failed runs (above); run the command again "
                         "to train only those")


def stage_grid(args, ds):
    primary = [v for v in args.variants if v in PRIMARY]
    run_grid(args, primary, args.seeds_primary)
    run_grid(args, [v for v in args.variants if v not in PRIMARY], args.seeds_other)
    runs = report.reference_rows(E.load_results(Path(args.results_dir) / f"{args.dataset}.csv"))
    # Every candidate judged on as many runs, so a rerun chooses alike. Notebook 07 and the report choose on
    # all seeds; they can name another variant, whose pair with SASRec then has fewer seeds.
    runs = runs[runs["seed"] <= args.seeds_other]
    chosen = {report.chosen_on_validation(runs, [v for v in VARIANTS if v.startswith("ref_llm_cos")]),
              report.chosen_on_validation(runs, [v for v in VARIANTS if report.is_reference(v)])} - {""}
    top_up = sorted(chosen - set(PRIMARY))  # the primaries have their seeds already
    if top_up:
        print(f"chosen on validation: {', '.join(top_up)}; topped up to {args.seeds_primary} seeds")
        run_grid(args, top_up, args.seeds_primary)


def stage_report(args, ds):
    results = Path(args.results_dir)
    runs = E.load_results(results / f"{args.dataset}.csv")
    grid, semantic, cosine = report.reference_grid(runs, E.load_ranks(results / f"{args.dataset}_ranks.npz"))
    print(E.mean_std_text(grid.summary, ["HR@20", "NDCG@20"]).to_string())
    print(grid.decisions[["A", "B", "family", "n_seeds_a", "n_seeds_b", "rel_change_%", "ci_low", "ci_high",
                          "decision"]].round(4).to_string(index=False))
    if args.no_notebook:
        return
    with tempfile.TemporaryDirectory() as both:  # notebook 07 reads one folder: ours beside the repository's
        for path in [*paths.RESULTS.glob("*.csv"), *paths.RESULTS.glob("*.npz")]:
            os.symlink(path, Path(both) / path.name)
        for suffix in (".csv", "_ranks.npz"):
            target = Path(both) / f"{args.dataset}{suffix}"
            target.unlink(missing_ok=True)
            os.symlink((results / f"{args.dataset}{suffix}").resolve(), target)
        env = {**os.environ, "SRACL_RESULTS_DIR": both,
               "SRACL_REGIMES": f"ml-100k,ml-100k-last7,amazon-beauty-ids,{args.dataset}"}
        subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "07"], check=True, env=env)
    print("notebook 07 with this regime: build/notebooks/07_evaluation.ipynb")


def main(argv=None):
    args = parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown or not stages:
        raise SystemExit(f"--stages: unknown {sorted(unknown)}; choose from {', '.join(STAGES)}")
    ds = stage_data(args)
    for stage in stages[1:] if stages[0] == "data" else stages:
        started = time.time()
        print(f"== {stage}", flush=True)
        globals()[f"stage_{stage}"](args, ds)
        print(f"== {stage} done in {time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
