"""The sentence encoder's CPU back ends against PyTorch float32: seconds, and whether the neighbours agree.

    python benchmarks/encoder_backends.py                 # ML-100K's template item and user texts, 2 threads
    python benchmarks/encoder_backends.py --threads 1 --n-users 300
    pip install onnxruntime openvino onnx                 # then the two runtimes are measured too

Notebook 03 spends most of its CPU time encoding texts with all-MiniLM-L6-v2. A faster back end is only
worth taking if it finds the same neighbours, so for each back end this prints the encoding time of the
same texts, measured one after the other in one run, and against float32: overlap@10 of every text's
cosine top-10 neighbours among the texts of its kind (items among items, users among users), and the
largest 1 - cosine between a text's two embeddings. Back ends: PyTorch float32 (the default), PyTorch's
dynamic int8 quantisation of the linear layers, and, where installed, ONNX Runtime and OpenVINO in
float32. sentence-transformers reaches those two through optimum, whose releases require
transformers < 4.58 (this project pins 5.24), so here the same BertModel is exported to ONNX with
torch.onnx and both runtimes run that file; tokenising, mean pooling and normalising are the
sentence-transformers model's own steps, written out, for every back end alike. Last, the library's
TextEncoder on the same model, which batches texts by token count instead of characters.
"""
import argparse
import copy
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sracl_lite import prompts  # noqa: E402
from sracl_lite.data import load_dataset  # noqa: E402
from sracl_lite.encoder import DEFAULT_MODEL_ID, EncoderConfig, TextEncoder, load_sentence_model  # noqa: E402
from train_speed import cpu_matmul_peak  # noqa: E402

INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def top_k(emb: np.ndarray, k: int = 10) -> np.ndarray:
    cosine = emb @ emb.T
    np.fill_diagonal(cosine, -np.inf)
    return np.argsort(-cosine, axis=1, kind="stable")[:, :k]


def torch_runner(bert):
    def run(batch):
        with torch.inference_mode():
            return bert(**{name: torch.from_numpy(batch[name]) for name in INPUTS}).last_hidden_state.numpy()
    return run


class LastHiddenState(torch.nn.Module):
    """The BertModel with positional inputs and one output, as torch.onnx exports it."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=token_type_ids).last_hidden_state


def export_onnx(bert, tokenizer, path: Path):
    example = tokenizer(["an example", "two"], padding=True, return_tensors="pt")
    dynamic = {name: {0: "batch", 1: "tokens"} for name in INPUTS + ["last_hidden_state"]}
    torch.onnx.export(LastHiddenState(bert).eval(), tuple(example[name] for name in INPUTS), str(path),
                      input_names=INPUTS, output_names=["last_hidden_state"], dynamic_axes=dynamic,
                      opset_version=17, dynamo=False)


def onnxruntime_runner(path: Path, threads: int):
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {name: batch[name] for name in INPUTS})[0]


def openvino_runner(path: Path, threads: int):
    import openvino
    compiled = openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                                  "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda batch: request.infer({name: batch[name] for name in INPUTS})[compiled.output(0)]


def encode(run, tokenizer, texts: list, batch_size: int) -> np.ndarray:
    """Unit-length mean-pooled embeddings, longest texts first as sentence-transformers batches them."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = None
    for start in range(0, len(texts), batch_size):
        rows = order[start:start + batch_size]
        batch = dict(tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=256,
                               return_tensors="np"))
        batch = {name: batch[name].astype(np.int64) for name in INPUTS}
        mask = batch["attention_mask"][..., None].astype(np.float32)
        pooled = (run(batch) * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        out = np.empty((len(texts), pooled.shape[1]), np.float32) if out is None else out
        out[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    return out


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
    model = load_sentence_model(DEFAULT_MODEL_ID, "cpu")
    tokenizer, bert = model.tokenizer, model[0].auto_model.eval()
    int8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(bert), {torch.nn.Linear}, dtype=torch.qint8)
    runners = {"torch float32": torch_runner(bert), "torch int8 (dynamic)": torch_runner(int8)}
    folder = tempfile.TemporaryDirectory()
    onnx_file = Path(folder.name) / "minilm.onnx"
    for name, package, make in (("onnxruntime float32", "onnxruntime", onnxruntime_runner),
                                ("openvino float32", "openvino", openvino_runner)):
        if importlib.util.find_spec(package) is None:
            print(f"{name}: not measured ({package} is not installed)")
            continue
        if not onnx_file.exists():
            export_onnx(bert, tokenizer, onnx_file)
        runners[name] = make(onnx_file, args.threads)
    print(f"{DEFAULT_MODEL_ID}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}; "
          f"{len(texts['items'])} item and {len(texts['users'])} user template texts of ML-100K")
    results = {}
    for name, run in runners.items():
        encode(run, tokenizer, texts["items"][:64], args.batch_size)  # warm-up
        start = time.perf_counter()
        results[name] = {kind: encode(run, tokenizer, t, args.batch_size) for kind, t in texts.items()}
        results[name]["seconds"] = time.perf_counter() - start
    start = time.perf_counter()   # sentence-transformers' own encode, for its overhead over the loop above
    own = {kind: model.encode(t, batch_size=args.batch_size, normalize_embeddings=True) for kind, t in texts.items()}
    results["sentence-transformers encode"] = {**own, "seconds": time.perf_counter() - start}
    start = time.perf_counter()   # the library's path: the same model, batches made by token count
    library = TextEncoder(EncoderConfig(cache_dir=None, show_progress=False, device="cpu",
                                        batch_size=args.batch_size), model=model)
    ours = {kind: library.encode(t) for kind, t in texts.items()}
    results["TextEncoder (token batches)"] = {**ours, "seconds": time.perf_counter() - start}
    folder.cleanup()
    base = results["torch float32"]
    for name, got in results.items():
        overlap = {kind: np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_k(base[kind]), top_k(got[kind]))])
                   for kind in texts}
        drift = max(float((1 - (base[kind] * got[kind]).sum(1)).max()) for kind in texts)
        print(f"{name:28s} {got['seconds']:6.1f} s, x{base['seconds'] / got['seconds']:.2f} vs float32; "
              f"overlap@10 items {overlap['items']:.3f}, users {overlap['users']:.3f}; "
              f"largest 1 - cosine to float32 {drift:.2e}")
    print("(float32 against itself: the 1 - cosine of a unit vector with itself, float32 rounding)")
    for kind, t in texts.items():   # what each batching encodes, padding included
        ids = tokenizer(t, truncation=True, max_length=model.max_seq_length)["input_ids"]
        lengths = np.array([len(row) for row in ids])
        padded = {by: sum(lengths[rows].max() * len(rows) for rows in np.array_split(order, range(
                      args.batch_size, len(t), args.batch_size)))
                  for by, order in (("characters", np.argsort([-len(x) for x in t], kind="stable")),
                                    ("tokens", np.argsort(-lengths, kind="stable")))}
        print(f"{kind}: {lengths.sum():,d} tokens; batches of {args.batch_size} sorted by characters (the loop above, "
              f"sentence-transformers) encode {padded['characters']:,d} with padding, sorted by tokens (TextEncoder) "
              f"{padded['tokens']:,d}")
    with FlopCounterMode(display=False) as counter:   # matrix products and attention, as torch counts them
        encode(torch_runner(bert), tokenizer, texts["items"] + texts["users"], args.batch_size)
    yardstick = cpu_matmul_peak() * 1e12   # train_speed.py's yardstick, so the two shares compare
    rate = counter.get_total_flops() / base["seconds"]
    print(f"torch float32: {counter.get_total_flops() / 1e12:.2f} TFLOP in {base['seconds']:.1f} s, "
          f"{rate / 1e9:.0f} GFLOP/s (tokenising included); torch's own 4096 x 4096 float32 products on these "
          f"threads: {yardstick / 1e9:.0f} GFLOP/s, so {rate / yardstick:.0%} of that")


if __name__ == "__main__":
    main()
