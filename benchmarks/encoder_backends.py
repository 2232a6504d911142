"""The sentence encoder's CPU back ends against PyTorch float32: seconds, and whether the neighbours agree.

    python benchmarks/encoder_backends.py                 # ML-100K's template item and user texts, 2 threads
    python benchmarks/encoder_backends.py --threads 1 --n-users 300

Notebook 03 spends most of its CPU time encoding texts with all-MiniLM-L6-v2. A faster back end is only
worth taking if it finds the same neighbours, so for each back end this prints the encoding time of the
same texts, measured one after the other in one run, and against float32: overlap@10 of every text's
cosine top-10 neighbours among the texts of its kind (items among items, users among users), and the
largest 1 - cosine between a text's two embeddings. Back ends: PyTorch float32 (the default) and
PyTorch's dynamic int8 quantisation of the linear layers (no new package). ONNX Runtime through
sentence-transformers needs optimum-onnx, whose releases require transformers < 4.58 (this project pins
5.24), so it is not measured here.
"""
import argparse
import copy
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sracl_lite import prompts  # noqa: E402
from sracl_lite.data import load_dataset  # noqa: E402
from sracl_lite.encoder import DEFAULT_MODEL_ID, load_sentence_model  # noqa: E402


def top_k(emb: np.ndarray, k: int = 10) -> np.ndarray:
    cosine = emb @ emb.T
    np.fill_diagonal(cosine, -np.inf)
    return np.argsort(-cosine, axis=1, kind="stable")[:, :k]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-users", type=int, default=943, help="user texts (the longest inputs) to encode")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset("ml-100k")
    texts = {"items": list(prompts.template_item_texts(ds).values()),
             "users": list(prompts.template_user_texts(ds).values())[:args.n_users]}
    fp32 = load_sentence_model(DEFAULT_MODEL_ID, "cpu")
    int8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(fp32), {torch.nn.Linear}, dtype=torch.qint8)
    print(f"{DEFAULT_MODEL_ID}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}; "
          f"{len(texts['items'])} item and {len(texts['users'])} user template texts of ML-100K")
    results = {}
    for name, model in (("torch float32", fp32), ("torch int8 (dynamic)", int8)):
        model.encode(texts["items"][:64], batch_size=args.batch_size)  # warm-up
        start = time.perf_counter()
        results[name] = {kind: model.encode(t, batch_size=args.batch_size, normalize_embeddings=True,
                                            convert_to_numpy=True) for kind, t in texts.items()}
        results[name]["seconds"] = time.perf_counter() - start
    base = results["torch float32"]
    for name, got in results.items():
        overlap = {kind: np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_k(base[kind]), top_k(got[kind]))])
                   for kind in texts}
        drift = max(float((1 - (base[kind] * got[kind]).sum(1)).max()) for kind in texts)
        print(f"{name:22s} {got['seconds']:6.1f} s, x{base['seconds'] / got['seconds']:.2f} vs float32; "
              f"overlap@10 items {overlap['items']:.3f}, users {overlap['users']:.3f}; "
              f"largest 1 - cosine to float32 {drift:.2e}")


if __name__ == "__main__":
    main()
