"""Prompts, answer cache, backends' failure modes and resumable generation (prompts, llm, profiling)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before anything imports huggingface_hub

import numpy as np
import pandas as pd
import pytest

from sracl_lite import llm as L
from sracl_lite import paths, profiling
from sracl_lite import prompts as P
from sracl_lite.data import PrepConfig, SequenceData
from sracl_lite.standin import StandinEndpoint

REPO = Path(__file__).resolve().parents[1]


def toy_interactions(n_users=12, n_items=30, per_user=8, seed=0):
    """Each user has `per_user` distinct items; the last two (validation, test) of user u are
    the items only that user ever has, so their titles must not reach any other prompt."""
    rng = np.random.default_rng(seed)
    rows, held_out = [], {}
    for u in range(n_users):
        items = list(rng.choice(np.arange(1, n_items + 1), per_user - 2, replace=False))
        items += [1000 + 2 * u, 1001 + 2 * u]
        held_out[u] = items[-2:]
        rows += [(u, int(i), t) for t, i in enumerate(items)]
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    ids = sorted(interactions["item_id"].unique())
    items = pd.DataFrame({"item_id": ids, "title": [f"Film{i:05d}" for i in ids],
                          "text": [f"Title: Film{i:05d}. Genres: Drama." for i in ids]})
    return interactions, items, held_out


@pytest.fixture(scope="module")
def toy():
    interactions, items, _ = toy_interactions()
    ds = SequenceData.from_interactions(interactions, "toy", items, PrepConfig(1, 1))
    ds.domain, ds.item_noun, ds.verb_past = "movies", "movie", "watched"
    return ds


# ------------------------------------------------------------------ prompts

def test_prompts_hold_no_validation_or_test_items(toy):
    item_prompts = P.item_prompts(toy)
    user_prompts = P.user_prompts(toy)
    held = {int(i) for i in np.concatenate([toy.valid_targets, toy.test_targets])}
    assert len(held) == 2 * toy.n_users  # the fixture made them unique to one user each
    for item in held:
        title = toy.items.at[item, "title"]
        # its own prompt describes the item, but no training sequence ends with it
        assert "No user sequences" in item_prompts[item]
        others = [p for k, p in item_prompts.items() if k != item] + list(user_prompts.values())
        assert not any(title in p for p in others), title
    # every context line is a window of some user's training sequence ending at the item
    windows = set()
    for seq in toy.train_sequences:
        titles = [toy.items.at[int(i), "title"] for i in seq]
        windows |= {" -> ".join(titles[max(0, e - 9):e + 1]) for e in range(len(titles))}
    lines = [line[2:] for p in item_prompts.values() for line in p.splitlines() if line.startswith("- ")]
    assert lines and all(line in windows for line in lines)


def test_user_prompt_is_the_recent_training_history(toy):
    cfg = P.PromptConfig(max_history=4)
    prompts = P.user_prompts(toy, cfg)
    assert list(prompts) == [(u, len(s)) for u, s in enumerate(toy.train_sequences)]
    seq = toy.train_sequences[0]
    listed = [line.split(". ", 1)[1] for line in prompts[(0, len(seq))].splitlines()
              if line[:1].isdigit()]
    assert listed == [toy.items.at[int(i), "title"] for i in seq[-4:]]
    assert f"the most recent 4 of {len(seq)}" in prompts[(0, len(seq))]
    per_prefix = P.user_prompts(toy, cfg, granularity="prefix")
    assert len(per_prefix) == sum(len(s) for s in toy.train_sequences)
    assert per_prefix[(0, len(seq))] == prompts[(0, len(seq))]  # shared cache entries
    with pytest.raises(ValueError, match="granularity"):
        P.user_prompts(toy, cfg, granularity="session")


def test_item_prompt_contexts_are_seeded_and_bounded(toy):
    cfg = P.PromptConfig(n_contexts=2, context_len=3)
    a, b = P.item_prompts(toy, cfg), P.item_prompts(toy, cfg)
    assert a == b
    lines = [[line for line in p.splitlines() if line.startswith("- ")] for p in a.values()]
    assert max(len(x) for x in lines) == 2
    assert max(line.count(" -> ") for x in lines for line in x) == 2
    other_seed = P.item_prompts(toy, P.PromptConfig(n_contexts=2, context_len=3, seed=7))
    assert other_seed != a  # the seed does pick the contexts


def test_prompts_identical_across_processes(toy, tmp_path):
    """No dependence on hash seeds or dict order: a fresh interpreter builds the same text."""
    interactions, items, _ = toy_interactions()
    interactions.to_csv(tmp_path / "inter.csv", index=False)
    items.to_csv(tmp_path / "items.csv", index=False)
    code = ("import hashlib, json, sys; from sracl_lite import prompts as P; from sracl_lite.data import *;"
            "ds = SequenceData.from_interactions(__import__('pandas').read_csv(sys.argv[1]), 'toy',"
            " __import__('pandas').read_csv(sys.argv[2]), PrepConfig(1, 1));"
            "p = {**{str(k): v for k, v in P.item_prompts(ds).items()},"
            " **{str(k): v for k, v in P.user_prompts(ds).items()}};"
            "print(hashlib.sha256(json.dumps(p, sort_keys=True).encode()).hexdigest())")
    files = [str(tmp_path / "inter.csv"), str(tmp_path / "items.csv")]
    digests = {subprocess.run([sys.executable, "-c", code, *files], cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}, check=True).stdout.strip()
               for seed in ("1", "2")}
    assert len(digests) == 1 and len(digests.pop()) == 64


def test_template_texts(toy):
    items = P.template_item_texts(toy)
    users = P.template_user_texts(toy)
    assert items[1] == toy.items.at[1, "text"] and len(items) == toy.n_items
    seq = toy.train_sequences[0]
    newest = toy.items.at[int(seq[-1]), "title"]
    assert users[(0, len(seq))].startswith(f"Recently watched: {newest};")


# ------------------------------------------------------------------ cache

def test_cache_resumes_after_torn_line_without_duplicates(tmp_path):
    path = tmp_path / "a.jsonl"
    cache = profiling.AnswerCache(path, "m", {"t": 0})
    for i in range(3):
        cache.put(f"prompt {i}", f"answer {i}")
    cache.put("prompt 0", "a different answer")  # already answered: ignored
    cache.close()
    with open(path, "ab") as f:
        f.write(b'{"key": "abc", "answ')  # a run killed mid-write
    cache = profiling.AnswerCache(path, "m", {"t": 0})
    assert len(cache.answers) == 3 and cache.get("prompt 0") == "answer 0"
    cache.put("prompt 3", "answer 3")
    cache.close()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert "header" in rows[0] and len(rows) == 5
    keys = [r["key"] for r in rows[1:]]
    assert len(set(keys)) == len(keys) == 4
    assert all(len(k) == 64 for k in keys)
    assert "prompt" not in path.read_text()  # prompts (user histories) are never stored


def test_cache_never_mixes_models_or_settings(tmp_path):
    path = tmp_path / "a.jsonl"
    cache = profiling.AnswerCache(path, "model-a", {"max_new_tokens": 96})
    cache.put("p", "from a")
    cache.close()
    for model, settings in (("model-b", {"max_new_tokens": 96}), ("model-a", {"max_new_tokens": 64})):
        with pytest.raises(ValueError, match="holds answers of model-a"):
            profiling.AnswerCache(path, model, settings)
    assert profiling.answer_key("p", "model-a", {"x": 1}) != profiling.answer_key("p", "model-b", {"x": 1})
    assert profiling.answer_key("p", "m", {"x": 1}) != profiling.answer_key("p", "m", {"x": 2})
    fast, slow = L.FakeBackend(), L.FakeBackend(delay_s=0.1)
    assert L.model_tag(fast) == L.model_tag(slow)  # delay is no generation setting
    slow.settings = {"answer": "other"}
    assert L.model_tag(fast) != L.model_tag(slow)


def test_generate_cached_then_load_without_backend(tmp_path, toy):
    prompts = P.user_prompts(toy)
    backend = L.FakeBackend()
    answers = profiling.generate_cached(prompts, backend, tmp_path / "u.jsonl", progress=False)
    assert list(answers) == list(prompts) and all(a.startswith("Fake answer") for a in answers.values())
    again = L.FakeBackend()
    assert profiling.generate_cached(prompts, again, tmp_path / "u.jsonl", progress=False) == answers
    assert again.generated_tokens == 0  # nothing regenerated
    assert profiling.load_cached(prompts, tmp_path / "u.jsonl") == answers
    extra = {**prompts, ("new", 1): "an unanswered prompt"}
    with pytest.raises(KeyError, match="1 of"):
        profiling.load_cached(extra, tmp_path / "u.jsonl")
    assert profiling.load_cached(extra, tmp_path / "u.jsonl", missing="skip") == answers


# ------------------------------------------------------------------ kill and resume (real process)

def run_script(out, data_dir, inter, items, *extra):
    return [sys.executable, str(REPO / "scripts" / "generate_profiles.py"), "--dataset", "toy",
            "--interactions", str(inter), "--items", str(items), "--data-dir", str(data_dir),
            "--backend", "fake", "--out", str(out), *extra]


def read_rows(path):
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()[1:]]
    return {r["key"]: r["answer"] for r in rows}, [r["key"] for r in rows]


def test_probe_prompts_get_their_own_cache_file(tmp_path):
    interactions, items, _ = toy_interactions(n_users=40, n_items=20, per_user=10)
    interactions[interactions["item_id"] < 1000].to_csv(tmp_path / "inter.csv", index=False)
    items[items["item_id"] < 1000].to_csv(tmp_path / "items.csv", index=False)
    args = (tmp_path / "data", tmp_path / "inter.csv", tmp_path / "items.csv")
    subprocess.run(run_script(tmp_path / "out", *args, "--what", "probes", "--probes", "5"),
                   check=True, capture_output=True, cwd=REPO)
    [folder] = (tmp_path / "out" / "toy").iterdir()
    answers, keys = read_rows(folder / "user_prefixes.jsonl")
    assert len(keys) == len(set(keys)) == 5 and all(answers.values())
    assert not (folder / "users.jsonl").exists()  # probes never land in the per-user cache
    assert json.loads((folder / "run.json").read_text())["probes"][0]["prompts"] == 5


def test_interrupted_run_resumes_from_its_cache(tmp_path):
    prompts = {n: f"prompt {n}" for n in range(12)}
    path = tmp_path / "users.jsonl"
    with pytest.raises(L.Interrupted, match="after 5 answers"):
        profiling.generate_cached(prompts, L.FakeBackend(stop_after=5), path, progress=False)
    assert len(path.read_text().splitlines()) == 1 + 5       # the header, then the 5 answers given
    resumed = L.FakeBackend()
    answers = profiling.generate_cached(prompts, resumed, path, progress=False)
    assert resumed.answered == 7
    assert answers == profiling.generate_cached(prompts, L.FakeBackend(), tmp_path / "whole.jsonl", progress=False)


def test_killed_run_resumes_to_the_same_answers(tmp_path):
    interactions, items, _ = toy_interactions(n_users=40, n_items=20, per_user=10)
    items = items[items["item_id"] < 1000]  # held-out items would not survive the 5-core
    interactions = interactions[interactions["item_id"] < 1000]
    interactions.to_csv(tmp_path / "inter.csv", index=False)
    items.to_csv(tmp_path / "items.csv", index=False)
    args = (tmp_path / "data", tmp_path / "inter.csv", tmp_path / "items.csv")

    reference = tmp_path / "reference"
    subprocess.run(run_script(reference, *args), check=True, capture_output=True, cwd=REPO)
    [ref_folder] = (reference / "toy").iterdir()

    out = tmp_path / "resumed"
    proc = subprocess.Popen(run_script(out, *args, "--fake-delay", "0.2", "--what", "users"),
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    users_file = out / "toy" / ref_folder.name / "users.jsonl"
    deadline = time.monotonic() + 120
    while (not users_file.exists() or len(users_file.read_text().splitlines()) < 6) and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before, _ = read_rows(users_file)
    expected, _ = read_rows(ref_folder / "users.jsonl")
    assert 5 <= len(done_before) < len(expected)  # killed mid-way
    with open(users_file, "ab") as f:
        f.write(b'{"key": "0123')  # and torn, as a kill during a write leaves it

    subprocess.run(run_script(out, *args), check=True, capture_output=True, cwd=REPO)
    for kind in ("items", "users"):
        answers, keys = read_rows(out / "toy" / ref_folder.name / f"{kind}.jsonl")
        assert len(keys) == len(set(keys))
        assert answers == read_rows(ref_folder / f"{kind}.jsonl")[0]
    runs = json.loads((out / "toy" / ref_folder.name / "run.json").read_text())
    assert runs["users"][-1]["cached_before"] == len(done_before)
    assert runs["users"][-1]["generated"] == len(expected) - len(done_before)


# ------------------------------------------------------------------ OpenAI-compatible endpoint

class ScriptedServer(StandinEndpoint):
    """A loopback chat-completions server answering from a list of (status, body) replies."""

    def __init__(self, replies):
        self.replies, self.requests = list(replies), []
        super().__init__()

    def answer(self, body, request=None):
        self.requests.append((request.path, request.headers.get("Authorization"), body))
        return self.replies.pop(0) if self.replies else (500, "no reply left")


def chat_answer(text):
    return {"choices": [{"message": {"role": "assistant", "content": text}}],
            "usage": {"completion_tokens": 3}}


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("SRACL_TEST_KEY", "secret")
    return "SRACL_TEST_KEY"


def backend_for(server_url, key_env, **kw):
    return L.OpenAIBackend("tiny-chat", base_url=server_url, api_key_env=key_env,
                                   backoff_s=0.01, timeout_s=10, **kw)


def test_openai_success(api_key):
    server = ScriptedServer([(200, chat_answer(" A thoughtful drama fan. "))])
    try:
        backend = backend_for(server.url, api_key, settings=L.LLMSettings(max_new_tokens=42))
        assert backend.generate(["describe"]) == ["A thoughtful drama fan."]
        path, auth, body = server.requests[0]
        assert path == "/v1/chat/completions" and auth == "Bearer secret"
        assert body["model"] == "tiny-chat" and body["max_tokens"] == 42 and body["temperature"] == 0
        assert body["messages"] == [{"role": "user", "content": "describe"}]
        assert backend.generated_tokens == 3
    finally:
        server.close()


def test_openai_retries_429_then_succeeds(api_key):
    server = ScriptedServer([(429, {"error": "slow down"}), (503, "busy"), (200, chat_answer("ok"))])
    try:
        assert backend_for(server.url, api_key).generate(["p"]) == ["ok"]
        assert len(server.requests) == 3
    finally:
        server.close()


def test_openai_gives_up_after_max_retries(api_key):
    server = ScriptedServer([(429, "slow down")] * 3)
    try:
        with pytest.raises(RuntimeError, match="HTTP 429"):
            backend_for(server.url, api_key, max_retries=2).generate(["p"])
        assert len(server.requests) == 3
    finally:
        server.close()


@pytest.mark.parametrize("reply", [{"choices": []}, {"answer": "hi"}, "not json at all",
                                   {"choices": [{"message": {"content": None}}]}])
def test_openai_malformed_answer_is_a_clear_error(api_key, reply):
    server = ScriptedServer([(200, reply)])
    try:
        with pytest.raises(RuntimeError, match=r"malformed chat-completions answer.*choices\[0\]"):
            backend_for(server.url, api_key).generate(["p"])
        assert len(server.requests) == 1  # not retried
    finally:
        server.close()


def test_openai_client_error_is_not_retried(api_key):
    server = ScriptedServer([(401, {"error": "invalid key"})])
    try:
        with pytest.raises(RuntimeError, match="HTTP 401.*invalid key"):
            backend_for(server.url, api_key).generate(["p"])
        assert len(server.requests) == 1
    finally:
        server.close()


def test_openai_missing_key(monkeypatch):
    monkeypatch.delenv("SRACL_ABSENT_KEY", raising=False)
    with pytest.raises(ValueError, match="SRACL_ABSENT_KEY is empty"):
        L.OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key_env="SRACL_ABSENT_KEY")


def test_openai_unreachable_endpoint(api_key):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = backend_for(f"http://127.0.0.1:{port}/v1", api_key, max_retries=1)
    with pytest.raises(ConnectionError, match=f"cannot reach http://127.0.0.1:{port}/v1/chat/completions"):
        backend.generate(["p"])


def test_concurrent_answers_keep_prompt_order(api_key, tmp_path):
    server = ScriptedServer([(200, chat_answer("same"))] * 6)
    try:
        backend = backend_for(server.url, api_key, concurrency=3)
        prompts = {i: f"prompt {i}" for i in range(6)}
        answers = profiling.generate_cached(prompts, backend, tmp_path / "c.jsonl", progress=False)
        assert list(answers) == list(range(6)) and set(answers.values()) == {"same"}
        sent = sorted(body["messages"][0]["content"] for _, _, body in server.requests)
        assert sent == sorted(prompts.values())
    finally:
        server.close()


# ------------------------------------------------------------------ local models

def test_unknown_local_model_is_a_clear_error():
    with pytest.raises(OSError, match="cannot load LLM 'no-such-org/no-such-model-sracl'.*Fix"):
        L.TransformersBackend("no-such-org/no-such-model-sracl")


def test_unknown_dtype_is_a_clear_error():
    # Checked before any model loads, so a typo costs no load time.
    with pytest.raises(ValueError, match="dtype='float33'.*'float32'"):
        L.TransformersBackend("no-such-org/no-such-model-sracl", dtype="float33")


def test_unknown_backend_name():
    with pytest.raises(ValueError, match="backend='llama'"):
        L.make_backend("llama")


def test_committed_profiles_answer_the_current_prompts():
    """The cache in data/profiles must match today's prompt code; otherwise regenerate it."""
    folders = sorted((paths.COMMITTED_PROFILES / "ml-100k").glob("*/prompts.json"))
    assert folders, f"no committed ML-100K profiles under {paths.COMMITTED_PROFILES}"
    from sracl_lite.data import load_dataset
    ds = load_dataset("ml-100k")
    for meta in folders:
        items, users = profiling.load_profiles(ds, meta.parent, missing="skip")
        assert len(items) > 0 and len(users) > 0, meta.parent
        assert all(isinstance(a, str) for a in items.values())


def test_pick_profile_dir_prefers_the_tag(tmp_path):
    for name in ("a-model", "b-model"):
        (tmp_path / "shop" / name).mkdir(parents=True)
        (tmp_path / "shop" / name / "prompts.json").write_text("{}")
    assert profiling.pick_profile_dir("shop", "a-model", root=tmp_path).name == "a-model"
    assert profiling.pick_profile_dir("shop", "no-such-tag", root=tmp_path).name == "b-model"
    assert profiling.pick_profile_dir("other", root=tmp_path) is None


def test_texts_with_answers_fall_back_to_templates(toy, tmp_path):
    item_prompts = P.item_prompts(toy)
    answered = dict(list(item_prompts.items())[:2])
    profiling.generate_cached(answered, L.FakeBackend(), tmp_path / "items.jsonl", progress=False)
    template = {"items": {k: f"template {k}" for k in item_prompts}}
    texts, coverage = profiling.texts_with_answers(template, {"items": item_prompts}, tmp_path)
    assert coverage == {"items": 2 / len(item_prompts)}
    assert [not texts["items"][k].startswith("template") for k in item_prompts] == \
        [k in answered for k in item_prompts]
    users = {(0, 3): "template of user 0"}
    texts, coverage = profiling.texts_with_answers({**template, "users": users},
                                                   {"items": item_prompts, "users": {(0, 3): "a prompt"}}, tmp_path)
    assert texts is None and coverage["users"] == 0, "a part without any answer means no LLM source"


def test_committed_answers_are_found_from_a_data_folder_elsewhere(tmp_path, monkeypatch):
    """SRACL_DATA_DIR (a mounted Drive folder on Colab) must not hide the committed answers; a folder
    of the same name in the data folder (answers generated there) takes their place."""
    committed = sorted(p.parent.name for p in (paths.COMMITTED_PROFILES / "ml-100k").glob("*/prompts.json"))
    monkeypatch.setenv("SRACL_DATA_DIR", str(tmp_path))
    found = profiling.profile_dirs("ml-100k")
    assert [f.name for f in found] == committed
    assert all(f.parent.parent == paths.COMMITTED_PROFILES for f in found)
    own = tmp_path / "profiles" / "ml-100k" / committed[-1]
    own.mkdir(parents=True)
    (own / "prompts.json").write_text('{"model": "mine"}')
    assert profiling.pick_profile_dir("ml-100k") == own
    assert profiling.profile_dirs("ml-100k")[own] == {"model": "mine"}


def test_a_gguf_file_is_parsed_and_its_name_map_built_once_per_load(monkeypatch, tmp_path):
    gguf = pytest.importorskip("gguf")
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import TensorProcessor, get_gguf_hf_weights_map
    parsed, built = [], []

    class CountingReader:
        def __init__(self, path, mode="r"):
            parsed.append(str(path))
    monkeypatch.setattr(gguf, "GGUFReader", CountingReader)
    real_name_map = gguf.get_tensor_name_map

    def counting_name_map(arch, n_blocks):
        built.append((arch, n_blocks))
        return real_name_map(arch, n_blocks)
    monkeypatch.setattr(gguf, "get_tensor_name_map", counting_name_map)
    tiny = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=2))
    names = get_gguf_hf_weights_map(tiny, TensorProcessor())   # transformers' own walk: one map per submodule
    walked, built[:] = len(built), []
    with L._gguf_parsed_once():
        first, second = gguf.GGUFReader(tmp_path / "a.gguf"), gguf.GGUFReader(tmp_path / "a.gguf")
        other = gguf.GGUFReader(tmp_path / "b.gguf")
        shared_names = get_gguf_hf_weights_map(tiny, TensorProcessor())
    assert first is second and other is not first and len(parsed) == 2, "one parse per file inside the block"
    assert walked > 10 and built == [(gguf.MODEL_ARCH.LLAMA, 2)], "one name map inside the block"
    assert shared_names == names and "blk.0.attn_q.weight" in names, "the same tensor names either way"
    assert gguf.GGUFReader is CountingReader and gguf.get_tensor_name_map is counting_name_map, \
        "the reader and the name map are restored after the block"
