"""Stand-ins for what an offline machine lacks, to rehearse scripts/paper_setting.py end to end
(benchmarks/paper_rehearsal.py, tests/test_paper_setting.py):

- `write_snap_files`: Amazon 2014 SNAP files (reviews_<Category>_5.json.gz, meta_<Category>.json.gz,
  in their formats) for given (user, item) interactions, with made-up titles, brands, categories and
  descriptions of realistic length. Items that users buy together share words, so text neighbours
  carry some of the interaction signal, as real product text does.
- `StandinEndpoint`: a local OpenAI-compatible chat-completions server. It forwards the first
  `forward_first` distinct prompts to a real server (a llama.cpp server, say) and answers the rest at
  once with a made-up paragraph built from the prompt's own lines; with `fail_after` it answers
  HTTP 400 after that many answers, to stop a run midway.

Nothing here is SRA-CL; the numbers it leads to measure cost and plumbing, not the method.
"""
import gzip
import hashlib
import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

SYLLABLES = ["ra", "lo", "mi", "ve", "sa", "tor", "ne", "lu", "ka", "bel", "dri", "on", "ci", "ma", "zen", "qua"]
PRODUCTS = ["cream", "serum", "cleanser", "lotion", "shampoo", "conditioner", "mascara", "lipstick", "polish",
            "mask", "toner", "balm", "oil", "gel", "powder", "foundation", "eyeliner", "scrub", "spray", "brush"]
ADJECTIVES = ["hydrating", "gentle", "daily", "intensive", "matte", "natural", "organic", "volumizing", "repair",
              "soothing", "brightening", "long-lasting", "fragrance-free", "anti-aging", "smoothing", "clarifying"]
SHELVES = [["Skin Care", "Face", "Creams & Moisturizers"], ["Hair Care", "Shampoos"], ["Makeup", "Eyes", "Mascara"],
           ["Makeup", "Lips", "Lipstick"], ["Makeup", "Nails", "Nail Polish"], ["Skin Care", "Body", "Cleansers"],
           ["Fragrance", "Women's"], ["Tools & Accessories", "Brushes"], ["Bath & Body", "Scrubs & Body Treatments"],
           ["Hair Care", "Styling Products"]]


def _word(rng) -> str:
    return "".join(rng.choice(SYLLABLES, rng.integers(2, 4)))


def item_groups(users: np.ndarray, items: np.ndarray, n_groups: int, seed: int = 0) -> dict:
    """item -> group, from a rank-16 factorisation of who bought what (items bought together share
    a group more often than chance)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.linalg import svds
    u, i = np.unique(users, return_inverse=True), np.unique(items, return_inverse=True)
    matrix = csr_matrix((np.ones(len(users)), (u[1], i[1])), shape=(len(u[0]), len(i[0])))
    _, _, vt = svds(matrix, k=16, random_state=seed)
    directions = np.random.default_rng(seed).normal(size=(16, n_groups))
    return dict(zip(i[0].tolist(), (vt.T @ directions).argmax(1).tolist()))


def write_snap_files(raw_dir, category: str, users, items, seed: int = 0) -> list:
    """Write raw_dir/reviews_<category>_5.json.gz (JSON lines, one review per interaction, in the given
    order as time order) and raw_dir/meta_<category>.json.gz (Python-literal lines, one per item);
    users and items are arrays of ids, one entry per interaction. Returns the two paths."""
    raw_dir, rng = Path(raw_dir), np.random.default_rng(seed)
    users, items = np.asarray(users), np.asarray(items)
    groups = item_groups(users, items, n_groups=max(4, len(np.unique(items)) // 60), seed=seed)
    vocab = {g: dict(brands=[_word(rng).capitalize() for _ in range(3)], nouns=rng.choice(PRODUCTS, 3),
                     words=[_word(rng) for _ in range(12)], shelf=SHELVES[g % len(SHELVES)])
             for g in sorted(set(groups.values()))}
    raw_dir.mkdir(parents=True, exist_ok=True)
    reviews = raw_dir / f"reviews_{category}_5.json.gz"
    with gzip.open(reviews, "wt", encoding="utf-8") as out:
        for t, (user, item) in enumerate(zip(users.tolist(), items.tolist())):
            out.write(json.dumps({"reviewerID": f"A{user:012d}", "asin": f"B{item:09d}", "overall": 5.0,
                                  "unixReviewTime": 1_200_000_000 + 60 * t}) + "\n")
    meta = raw_dir / f"meta_{category}.json.gz"
    with gzip.open(meta, "wt", encoding="utf-8") as out:
        for item in sorted(groups):
            v = vocab[groups[item]]
            title = " ".join([rng.choice(v["brands"]), *rng.choice(ADJECTIVES, 2), *rng.choice(v["words"], 3),
                              rng.choice(v["nouns"]), f"{rng.integers(1, 17)} oz"])
            description = " ".join(rng.choice(v["words"] + ADJECTIVES + PRODUCTS, rng.integers(30, 90)))
            out.write(repr({"asin": f"B{item:09d}", "title": title, "brand": title.split()[0],
                            "price": round(float(rng.uniform(3, 60)), 2), "categories": [[category, *v["shelf"]]],
                            "description": description.capitalize() + "."}) + "\n")
    return [reviews, meta]


def standin_answer(prompt: str) -> str:
    """A paragraph of about 60 words made from the prompt's listed lines, the same for the same prompt."""
    lines = [line.split(". ", 1)[-1] for line in prompt.splitlines() if line[:1].isdigit()] or prompt.splitlines()
    words = " ".join(lines).replace("->", " ").split()
    rng = np.random.default_rng(int(hashlib.blake2b(prompt.encode(), digest_size=4).hexdigest(), 16))
    return "Stand-in answer: likes " + " ".join(rng.choice(words, min(60, len(words)))) + "."


class StandinEndpoint:
    """A local OpenAI-compatible /chat/completions server in a thread (see the module docstring).
    `asked` counts the answers given per prompt; `forwarded` the prompts the real server answered.
    The address is part of the answers' cache key: a resumed run must use the same port."""

    def __init__(self, forward_url: str = None, forward_model: str = "", forward_first: int = 0,
                 fail_after: int = None, port: int = 0):
        self.forward_url, self.forward_model, self.forward_first = forward_url, forward_model, forward_first
        self.fail_after, self.asked, self.forwarded = fail_after, {}, set()
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, answer = endpoint.answer(body, self)
                data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        # close() waits for the serving loop's next poll: 0.05 s instead of the default 0.5 s
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def answer(self, body: dict, request=None) -> tuple:
        """(HTTP status, JSON answer or raw text) for one request body; `request` is the handler (path,
        headers), for subclasses that check them."""
        prompt = body["messages"][-1]["content"]
        with self.lock:
            if self.fail_after is not None and sum(self.asked.values()) >= self.fail_after:
                return 400, {"error": {"message": "stand-in endpoint told to fail"}}
            forward = self.forward_url and (prompt in self.forwarded or len(self.forwarded) < self.forward_first)
            if forward:
                self.forwarded.add(prompt)
            self.asked[prompt] = self.asked.get(prompt, 0) + 1
        if forward:
            request = urllib.request.Request(self.forward_url.rstrip("/") + "/chat/completions", method="POST",
                                             data=json.dumps({**body, "model": self.forward_model}).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=600) as response:
                return 200, json.loads(response.read())
        text = standin_answer(prompt)
        return 200, {"choices": [{"message": {"role": "assistant", "content": text}}],
                     "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(text) // 4}}

    def close(self):
        self.server.shutdown()
        self.server.server_close()
