"""LLM item summaries and user profiles, with a resumable answer cache (notebook 02).

Prompts come from prompts.py and answers from a backend in llm.py. `generate_cached` appends
every answer to a JSONL `AnswerCache` as soon as it arrives, keyed by sha256(prompt, model id,
settings), so an interrupted run resumes where it stopped. `load_cached` reads answers back
without loading any model.

The cache stores keys and answers, never prompts: a user prompt carries that user's history,
and the MovieLens terms keep interaction data out of the repository.
"""
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

from . import paths
from .llm import model_tag
from .prompts import PromptConfig, item_prompts, user_prompts

CACHE_FORMAT = "sracl-lite answer cache v1"



def answer_key(prompt: str, model_id: str, settings: dict) -> str:
    return hashlib.sha256(json.dumps([prompt, model_id, settings], sort_keys=True)
                          .encode()).hexdigest()


class AnswerCache:
    """JSONL file: a header line (model id, settings), then one {"key", "answer"} per line.

    Opening reads every finished answer; a torn last line (a run killed mid-write) is ignored,
    and cut off before the next append; duplicate keys keep their first answer. A file written
    by another model or settings is refused, so answers never mix. Only one process may write a
    file at a time. Introduced in notebook 02.
    """

    def __init__(self, path, model_id: str, settings: dict):
        self.path, self.model_id, self.settings = Path(path), model_id, settings
        self.answers, self._file = {}, None
        header = {"format": CACHE_FORMAT, "model_id": model_id, "settings": settings}
        if self.path.exists() and self.path.stat().st_size:
            self._read()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", encoding="utf-8") as f:
                f.write(json.dumps({"header": header}, sort_keys=True) + "\n")

    @staticmethod
    def read_header(path) -> dict:
        with open(path, encoding="utf-8") as f:
            first = f.readline()
        try:
            header = json.loads(first)["header"]
            assert header["format"] == CACHE_FORMAT
            return header
        except (ValueError, KeyError, TypeError, AssertionError):
            raise ValueError(f"{path}: first line is not an answer-cache header; "
                             "delete the file or point to another one") from None

    def _read(self):
        found = self.read_header(self.path)
        if found["model_id"] != self.model_id or found["settings"] != self.settings:
            raise ValueError(f"{self.path} holds answers of {found['model_id']} with settings "
                             f"{found['settings']}, not {self.model_id} with {self.settings}. "
                             "Fix: use one folder per model (profile_dir(dataset, backend))")
        data = self.path.read_bytes()
        complete = data[:data.rfind(b"\n") + 1]  # a torn last line is ignored here, cut in put()
        for n, line in enumerate(complete.decode("utf-8").splitlines()[1:], start=2):
            try:
                row = json.loads(line)
                self.answers.setdefault(row["key"], row["answer"])
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{self.path}, line {n}: not a cache row; the file is damaged. "
                                 "Delete that line (its answer will be redone)") from None

    def get(self, prompt: str):
        return self.answers.get(answer_key(prompt, self.model_id, self.settings))

    def put(self, prompt: str, answer: str):
        key = answer_key(prompt, self.model_id, self.settings)
        if key in self.answers:
            return
        if self._file is None:
            self._open_for_append()
        self._file.write(json.dumps({"key": key, "answer": answer}) + "\n")
        self._file.flush()  # on disk as it arrives: a kill loses at most the line being written
        self.answers[key] = answer

    def _open_for_append(self):
        self._file = open(self.path, "a", encoding="utf-8")
        try:  # a second writer would interleave lines; refuse it
            import fcntl
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:
            pass
        except OSError:
            self.close()
            raise RuntimeError(f"{self.path} is being written by another process; wait for it "
                               "to finish or stop it") from None
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):  # torn last line of a killed run: cut it off
            self._file.truncate(data.rfind(b"\n") + 1)

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None


def profile_dir(dataset: str, backend, root=None) -> Path:
    """data/profiles/<dataset>/<model tag>/ (root: another profiles folder), where items.jsonl and
    users.jsonl live."""
    return Path(root or paths.profiles_dir()) / dataset / model_tag(backend)


def generate_cached(prompts: dict, backend, cache_path, progress: bool = True,
                    desc: str = "answers") -> dict:
    """Answer every prompt, reusing cached answers and caching new ones as they arrive.

    prompts: key -> prompt text (from item_prompts / user_prompts). Returns key -> answer.
    A tqdm bar shows answers/s, ETA and generated tokens/s. Introduced in notebook 02.
    """
    from tqdm.auto import tqdm

    cache = AnswerCache(cache_path, backend.model_id, backend.settings)
    try:
        todo = list(dict.fromkeys(p for p in prompts.values() if cache.get(p) is None))
        if todo:
            bar = tqdm(total=len(todo), desc=desc, unit="answer", disable=not progress)
            start, tokens0 = time.time(), backend.generated_tokens

            def on_answer(i, answer):
                cache.put(todo[i], answer)
                bar.update(1)
                rate = (backend.generated_tokens - tokens0) / max(time.time() - start, 1e-9)
                bar.set_postfix_str(f"{rate:.0f} tok/s", refresh=False)

            backend.generate(todo, on_answer=on_answer)
            bar.close()
        return {k: cache.get(p) for k, p in prompts.items()}
    finally:
        cache.close()


def load_cached(prompts: dict, cache_path, missing: str = "error") -> dict:
    """Read answers from a cache file without loading a model (the header names model and
    settings, which the keys need). missing="error" fails on an unanswered prompt; "skip"
    leaves it out. Introduced in notebook 02."""
    path = Path(cache_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no cached answers; generate them with "
                                "scripts/generate_profiles.py (see notebook 02)")
    header = AnswerCache.read_header(path)
    cache = AnswerCache(path, header["model_id"], header["settings"])
    answers = {k: cache.get(p) for k, p in prompts.items()}
    absent = [k for k, a in answers.items() if a is None]
    if absent and missing == "error":
        raise KeyError(f"{path}: {len(absent)} of {len(prompts)} prompts have no answer (first: "
                       f"{absent[0]!r}); the prompts changed or generation did not finish. "
                       "Rerun scripts/generate_profiles.py, or pass missing='skip'")
    return {k: a for k, a in answers.items() if a is not None}


def profile_dirs(dataset: str, root=None) -> dict:
    """Profile folders of a dataset: folder -> its prompts.json (model id, settings, prompt config),
    sorted by name. Without `root`: the data folder's and the committed ones (paths.profile_roots); a
    folder of the data folder hides a committed one of the same name."""
    found = {}
    for base in reversed([Path(root)] if root else paths.profile_roots()):
        for meta in (base / dataset).glob("*/prompts.json"):
            found[meta.parent.name] = meta
    return {found[name].parent: json.loads(found[name].read_text()) for name in sorted(found)}


def pick_profile_dir(dataset: str, tag: str = None, root=None):
    """The profile folder notebooks 02 and 03 read: the one named `tag` (llm.model_tag) when it
    exists, else the last by name; None when the dataset has none."""
    folders = list(profile_dirs(dataset, root))
    return next((f for f in folders if f.name == tag), None) or (folders[-1] if folders else None)


def texts_with_answers(template: dict, prompts: dict, folder) -> tuple:
    """Notebook 03's LLM texts: for each part (items, users, probes) of `template` (key -> template
    text), the cached answer to `prompts[part][key]` from any cache file in `folder`, or the
    template text where none exists. Returns (texts or None when some part has no answer at all,
    coverage: the share of each part that has an answer)."""
    files = sorted(Path(folder).glob("*.jsonl"))
    texts, coverage = {}, {}
    for part, by_key in template.items():
        answers = {}
        for file in files:
            todo = {k: prompts[part][k] for k in by_key if k not in answers}
            answers.update(load_cached(todo, file, missing="skip"))
        texts[part] = {k: answers.get(k, text) for k, text in by_key.items()}
        coverage[part] = len(answers) / len(by_key)
    return (texts if all(coverage.values()) else None), coverage


def count_cached(prompts: dict, cache_path, backend) -> int:
    """How many of `prompts` already have an answer in cache_path for this backend."""
    if not Path(cache_path).exists():
        return 0
    cache = AnswerCache(cache_path, backend.model_id, backend.settings)
    return sum(cache.get(p) is not None for p in set(prompts.values()))


# What generate_profiles.py and notebook 02 answer, and the cache file of each.
PROFILE_FILES = {"items": "items.jsonl", "users": "users.jsonl", "probes": "user_prefixes.jsonl"}


def kind_prompts(ds, kind: str, cfg: PromptConfig = None, granularity: str = "user", probes: int = 300,
                 probe_seed: int = 2024) -> dict:
    """The prompts of one PROFILE_FILES kind: every item, every user (or training prefix), or the
    held-out prefixes notebook 03 judges sequence neighbours with (its N_PROBES and SEED)."""
    cfg = cfg or PromptConfig()
    if kind == "items":
        return item_prompts(ds, cfg)
    if kind == "users":
        return user_prompts(ds, cfg, granularity)
    if kind != "probes":
        raise ValueError(f"kind {kind!r}: expected one of {list(PROFILE_FILES)}")
    from .retrieval import holdout_probes
    by_prefix = user_prompts(ds, cfg, "prefix")
    held_out = holdout_probes(ds.train_sequences, max_probes=probes, seed=probe_seed)
    return {key: by_prefix[key] for key in held_out.keys()}


def write_prompt_settings(folder, ds, cfg: PromptConfig, backend):
    """Record in folder/prompts.json what the answer keys depend on besides the model, so that
    `load_profiles` can rebuild the same prompts later."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompts.json").write_text(json.dumps({
        "dataset": ds.name, "dataset_hash": ds.content_hash(), "prompt_config": asdict(cfg),
        "model_id": backend.model_id, "settings": backend.settings}, indent=1) + "\n")


def load_profiles(ds, folder, granularity: str = "user", missing: str = "error"):
    """(item texts, user texts) from a profile folder, without loading any model.

    Rebuilds the prompts with the settings in folder/prompts.json and looks their answers up
    in items.jsonl / users.jsonl. Keys as in item_prompts / user_prompts. Notebook 02.
    """
    folder = Path(folder)
    meta_path = folder / "prompts.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path} not found; generate profiles first with "
                                f"`python scripts/generate_profiles.py --dataset {ds.name}`")
    meta = json.loads(meta_path.read_text())
    if meta["dataset_hash"] != ds.content_hash():
        raise ValueError(f"{folder} was generated for another version of {meta['dataset']} "
                         f"(content hash differs from {ds.name}'s); regenerate the profiles or "
                         "load the dataset with the same filters")
    cfg = PromptConfig(**meta["prompt_config"])
    return (load_cached(item_prompts(ds, cfg), folder / "items.jsonl", missing),
            load_cached(user_prompts(ds, cfg, granularity), folder / "users.jsonl", missing))
