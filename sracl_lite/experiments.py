"""What a run is: its settings (TrainConfig), the run profiles and method presets that notebooks
04-06 share, and the named variants and comparisons of the results grid (notebook 07).
"""
from dataclasses import asdict, dataclass, field, replace
from typing import Optional

import numpy as np

from .losses import SYNTHESIZER_INITS, SYNTHESIZERS
from .metrics import metric_names
from .model import ModelConfig


INTRA_AUGMENTATIONS = ("semantic", "cl4srec", "duorec", "none")


POOL_MATCHES = ("auto", "user", "prefix")


CROSS_LOSSES = ("info_nce", "nt_xent")


SIMILARITIES = ("dot", "cosine")


EARLY_STOPS = ("strict", "recbole")


# TrainConfig fields that change how a run executes, not what it computes (a captured or compiled
# step gives the eager step's numbers within float tolerance: benchmarks/cuda_graph_check.py).
EXECUTION_FIELDS = ("device", "cuda_graph", "compile", "checkpoint", "progress", "eval_batch_size")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    max_len: int = 20               # reference setting; the pool is keyed by (user, length), not max_len
    batch_size: int = 256           # reference; also the number of in-batch negatives + 1
    lr: float = 1e-3                # Adam, as the reference
    weight_decay: float = 0.0       # the reference uses none; dropout 0.5 regularises instead
    epochs: int = 100               # upper bound; early stopping usually ends sooner
    patience: int = 10              # epochs without a better validation metric before stopping
    valid_metric: str = "MRR@10"    # model selection (reference: MRR@10; NDCG@10 is the alternative)
    early_stop: str = "strict"      # "strict": better means strictly higher, stop after `patience` epochs
                                    # without (ours); "recbole": the reference's rule (RecBole's
                                    # early_stopping): metric rounded to 4 decimals, a tie counts as better (the
                                    # later epoch is kept), stop after more than `patience` epochs without
    exclude_history: bool = True    # evaluation: the user's history is no candidate (ours); False ranks all
                                    # items, as the reference does (its results need this to compare)
    eval_every: int = 1             # validate every n epochs (and always after the last)
    alpha: float = 0.1              # weight of the cross-sequence loss (reference 0.1); 0 turns it off
    beta: float = 0.1               # weight of the intra-sequence loss (reference 0.1); 0 turns it off
    temperature: float = 1.0        # temperature of both contrastive losses (reference 1.0)
    similarity: str = "dot"         # "dot": dot products (reference); "cosine": of unit vectors (ours, beyond the
                                    # reference: bounded logits; pair it with a temperature such as 0.1-0.5)
    k: Optional[int] = None         # neighbours used per anchor / item; None = all in the tables
    synthesizer: str = "learned"    # "learned" (paper) | "uniform" (the w/o-synthesizer ablation) |
                                    # "uniform_dropout" (uniform, the learned weights' dropout kept)
    synth_dropout: float = 0.5      # dropout on the synthesizer's weights (reference 0.5)
    synth_init: str = "small"       # "small": weights start near uniform (ours); "xavier": W and a Xavier-
                                    # uniform, gain 1.414 (reference); see losses.SampleSynthesizer
    cross_loss: str = "info_nce"    # "info_nce": the next-item pass's anchors vs their positives, B x B, one
                                    # direction (ours); "nt_xent": a second dropout pass of the anchors vs the
                                    # positives, symmetric over 2B rows, 2B - 2 negatives (reference)
    intra_aug: str = "semantic"     # "semantic" (SRA-CL) | "cl4srec" (crop/mask/reorder) | "duorec" (a dropout
                                    # pass vs another prefix with the same next item, Qiu et al. 2022) | "none"
    sub_prob: float = 0.2           # per-item substitution probability (reference 0.2)
    pool_match: str = "auto"        # prefix -> pool entry: "user" (per-user profiles), "prefix", or detect
    max_train_prefixes: Optional[int] = None  # random subset of prefixes, to fit a CPU budget
    unique_candidates: bool = False # encode each distinct retrieved sequence once per step. A per-user pool
                                    # is small (943 entries on ML-100K), so a step's B*k candidates repeat
                                    # a lot (about 550 distinct of 2,560): the CPU path of notebooks 05-06.
                                    # Duplicates then share one dropout mask (same expectation). Not with
                                    # compile: the number of distinct rows changes every step
    seed: int = 2024                # reference seed; seeds init, dropout, batch order, augmentations
    device: str = "auto"            # "auto" = cuda when available
    bf16: bool = False              # bf16 autocast on CUDA (ignored on CPU). Off by default: with the
                                    # reference's dot-product InfoNCE (temperature 1) 4 of 6 bf16 runs
                                    # of SRA-CL on ML-100K diverged to NaN, and a 64-wide model gains
                                    # little from it (benchmarks/train_speed.py measures both)
    compile: Optional[str] = None   # torch.compile mode of the step's losses (combo kernels on): fused
                                    # kernels after 30-40 s of compiling; SASRec only, CUDA only. "default"
                                    # with cuda_graph is the fastest measured (README, Speed);
                                    # "reduce-overhead" graphs only the forward and backward passes
    cuda_graph: bool = False        # capture the whole step (gathers, augmentations, encoder, losses, backward,
                                    # Adam) as one CUDA graph and replay it per batch: the CPU no longer paces
                                    # the GPU (sracl_lite/step_graph.py). CUDA only; combines with compile
                                    # "default" (fused kernels), not with "reduce-overhead" (graphs itself)
    eval_batch_size: int = 1024     # users scored at once (each row is n_items scores)
    checkpoint: Optional[str] = None  # path to save the best state and its config; None keeps it in memory
    progress: bool = True           # tqdm bars

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = ModelConfig(**self.model)
        if self.synthesizer not in SYNTHESIZERS:
            raise ValueError(f"TrainConfig.synthesizer={self.synthesizer!r}; choose one of {tuple(SYNTHESIZERS)} "
                             "(alpha=0 turns the cross-sequence branch off)")
        if self.intra_aug not in INTRA_AUGMENTATIONS:
            raise ValueError(f"TrainConfig.intra_aug={self.intra_aug!r}; choose one of {INTRA_AUGMENTATIONS}")
        for name, allowed in (("synth_init", SYNTHESIZER_INITS), ("cross_loss", CROSS_LOSSES),
                              ("early_stop", EARLY_STOPS), ("similarity", SIMILARITIES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r}; choose one of {allowed}")
        if self.pool_match not in POOL_MATCHES:
            raise ValueError(f"TrainConfig.pool_match={self.pool_match!r}; choose one of {POOL_MATCHES}")
        if self.valid_metric not in metric_names():
            raise ValueError(f"TrainConfig.valid_metric={self.valid_metric!r}; choose one of {metric_names()}")
        if self.alpha < 0 or self.beta < 0:
            raise ValueError("TrainConfig.alpha and beta must be >= 0 (0 turns a loss off)")
        for name in ("max_len", "batch_size", "epochs", "patience", "eval_every", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.sub_prob <= 1.0:
            raise ValueError(f"TrainConfig.sub_prob is a probability; got {self.sub_prob}")
        if self.temperature <= 0:
            raise ValueError(f"TrainConfig.temperature must be > 0, got {self.temperature}")
        obstacle = self.compile and self.compile_obstacle()
        if obstacle:
            raise ValueError(f"TrainConfig.compile={self.compile!r}: {obstacle}")
        obstacle = self.cuda_graph and self.cuda_graph_obstacle()
        if obstacle:
            raise ValueError(f"TrainConfig.cuda_graph=True: {obstacle}")

    def compile_obstacle(self, device_type: Optional[str] = None) -> Optional[str]:
        """Why this config's training step cannot be compiled, or None if it can (device checked when given)."""
        if self.unique_candidates:
            return ("unique_candidates gives every step a different shape, which compiled steps cannot take; "
                    "use one or the other (on GPU: compile)")
        if self.uses_intra and self.intra_aug == "cl4srec":
            return ("with intra_aug='cl4srec', compiling the sort-based crop/mask/reorder views for CUDA never "
                    "finished (over 15 min, GPU idle); leave compile None")
        if self.model.backbone != "sasrec":
            return ("compile supports the SASRec backbone (torch.compile cannot trace nn.GRU); leave it None "
                    "for GRU4Rec, whose cuDNN GRU is already fused")
        if device_type is not None and device_type != "cuda":
            return "compile is for CUDA; on CPU leave it None"
        return None

    def cuda_graph_obstacle(self, device_type: Optional[str] = None) -> Optional[str]:
        """Why this config's step cannot be captured as a CUDA graph, or None if it can."""
        if self.unique_candidates:
            return "unique_candidates gives every step a different shape; a captured step needs one"
        if self.compile in ("reduce-overhead", "max-autotune"):
            return (f"compile={self.compile!r} captures CUDA graphs itself; combine cuda_graph with "
                    "compile='default' or None")
        if device_type is not None and device_type != "cuda":
            return "CUDA graphs need a CUDA device; on CPU leave cuda_graph False"
        return None

    def computed_settings(self) -> dict:
        """The settings that decide what a run computes, without those that decide only where and how
        fast it runs or what it shows: two runs with equal computed settings are the same run."""
        return {k: v for k, v in asdict(self).items() if k not in EXECUTION_FIELDS}

    @property
    def uses_intra(self) -> bool:
        return self.beta > 0 and self.intra_aug != "none"

    @property
    def second_anchor_pass(self) -> bool:
        return self.alpha > 0 and self.cross_loss == "nt_xent"


# Run profiles shared by notebooks 04-06, so that their numbers are comparable.
# paper: the reference settings (every prefix, up to 100 epochs, patience 10); a GPU job.
# cpu:   the same model, losses and hyper-parameters on a fixed seeded sixth of the training
#        prefixes (16,384 of 96,458 on ML-100K) for 4 epochs, retrieved sequences encoded once
#        per step: 256 steps, about 2.5 min of full SRA-CL on one CPU core. Not converged (the
#        validation metrics still rise at the last epoch): CPU numbers compare runs at an equal,
#        small budget only.
PROFILES = {
    "paper": {},
    "cpu": {"max_train_prefixes": 16384, "epochs": 4, "unique_candidates": True},
}


# Method presets: which SRA-CL. "default" is this project's form; "reference" is the authors'
# implementation (github.com/ziqiangcui/SRA-CL, recommender_code/) option by option: per-prefix
# pool (tables from retrieval.prefix_tables, exclusion "rank0"), second anchor pass with 2B NT-Xent,
# Xavier-initialised synthesizer, all items ranked, RecBole's early stopping, and its
# hyper-parameters (which are also our defaults, spelled out so that they cannot drift).
PRESETS = {
    "default": {},
    "reference": {"pool_match": "prefix", "cross_loss": "nt_xent", "synth_init": "xavier",
                  "exclude_history": False, "early_stop": "recbole", "max_len": 20, "batch_size": 256,
                  "lr": 1e-3, "weight_decay": 0.0, "epochs": 100, "patience": 10, "valid_metric": "MRR@10",
                  "alpha": 0.1, "beta": 0.1, "temperature": 1.0, "k": 10, "sub_prob": 0.2, "synth_dropout": 0.5,
                  "intra_aug": "semantic", "synthesizer": "learned",
                  "model": {"backbone": "sasrec", "hidden": 64, "n_layers": 2, "n_heads": 2, "ffn": 256,
                            "dropout": 0.5, "attn_dropout": 0.5, "layer_norm_eps": 1e-12, "init_std": 0.02}},
}


def profile_config(profile: str, preset: str = "default", step: str = "fast", **overrides) -> TrainConfig:
    """TrainConfig of a run profile ("cpu" or "paper", see PROFILES) and a method preset ("default" or
    "reference", see PRESETS), with `overrides` on top and the training step of `with_step` (notebooks 04-06)."""
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r}; choose one of {tuple(PROFILES)} (SRACL_PROFILE)")
    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r}; choose one of {tuple(PRESETS)}")
    # The profile comes after the preset: it sets the budget (epochs, prefixes), the preset the method.
    return with_step(TrainConfig(**{**PRESETS[preset], **PROFILES[profile], **overrides}), step)


STEPS = ("fast", "captured", "eager")


def with_step(config: TrainConfig, step: str = "fast", say=print) -> TrainConfig:
    """The config with the training step to run on its device. On CUDA "fast" captures the whole step
    as one CUDA graph and compiles its losses, "captured" only captures it, "eager" does neither; each
    gives the eager step's numbers within float tolerance (benchmarks/cuda_graph_check.py), and
    captured and compiled is 4-14x faster (README, Speed). A part the config cannot take is left out
    and `say` gets the reason. CPU and bf16 runs stay eager, and a config that already sets
    cuda_graph or compile is kept as it is."""
    from .model import resolve_device

    if step not in STEPS:
        raise ValueError(f"step {step!r}; choose one of {STEPS}")
    if step == "eager" or config.cuda_graph or config.compile or resolve_device(config.device).type != "cuda":
        return config
    if config.bf16:
        say("eager training step: capturing and compiling were not measured with bf16")
        return config
    compile_why = compile_mode = None
    if step == "fast":
        compile_why = config.compile_obstacle("cuda")
        compile_mode = None if compile_why else "default"
    graph_why = config.cuda_graph_obstacle("cuda")
    if graph_why:
        say(f"eager training step, not captured: {graph_why}")
    elif compile_why:
        say(f"training step captured as one CUDA graph, not compiled: {compile_why}")
    return replace(config, cuda_graph=graph_why is None, compile=compile_mode if graph_why is None else None)


# name -> what it is, its role, the semantic tables it needs (None: none) and its TrainConfig
# changes. "llm_text" etc. are the tables notebook 03 saves under data/processed/<dataset>/semantic/.
VARIANTS = {name: dict(role=role, tables=tables, config=config, description=description)
            for name, (role, tables, config, description) in {
    "sasrec": ("baseline", None, dict(alpha=0.0, beta=0.0), "SASRec, next-item loss only"),
    "cl4srec": ("baseline", None, dict(alpha=0.0, beta=0.1, intra_aug="cl4srec"),
        "SASRec + CL4SRec views (crop/mask/reorder)"),
    "duorec": ("baseline", None, dict(alpha=0.0, beta=0.1, intra_aug="duorec"),
        "SASRec + DuoRec (dropout pass vs a same-target prefix)"),
    "sracl": ("sra-cl", "llm_text", dict(alpha=0.1, beta=0.1), "SRA-CL, LLM profiles and summaries"),
    "sracl_template": ("sra-cl", "template_text", dict(alpha=0.1, beta=0.1),
        "SRA-CL w/o LLM (attribute text embedded directly)"),
    "no_cross": ("ablation", "llm_text", dict(alpha=0.0, beta=0.1), "SRA-CL w/o cross-sequence CL"),
    "no_intra": ("ablation", "llm_text", dict(alpha=0.1, beta=0.0), "SRA-CL w/o intra-sequence CL"),
    "no_synth": ("ablation", "llm_text", dict(alpha=0.1, beta=0.1, synthesizer="uniform"),
        "SRA-CL w/o learnable synthesizer (uniform weights)"),
    "random_nbrs": ("ablation", "random", dict(alpha=0.1, beta=0.1),
        "SRA-CL with random neighbours (w/o semantic retrieval)"),
    "gru4rec": ("plug-in", None, dict(alpha=0.0, beta=0.0, backbone="gru4rec"), "GRU4Rec, next-item loss only"),
    "gru4rec_sracl": ("plug-in", "llm_text", dict(alpha=0.1, beta=0.1, backbone="gru4rec"), "GRU4Rec + SRA-CL losses"),
    # What the paper's design suggests when LLM neighbours are weak (notebook 03): better
    # neighbour sources and a lighter CL weight. Compared on validation, never chosen on test.
    "sracl_mean": ("exploration", "mean_of_items", dict(alpha=0.1, beta=0.1),
        "SRA-CL, sequences embedded as the mean of LLM item embeddings"),
    "sracl_collab": ("exploration", "collaborative", dict(alpha=0.1, beta=0.1),
        "SRA-CL losses with collaborative (co-interaction) neighbours"),
    "sracl_light": ("exploration", "llm_text", dict(alpha=0.02, beta=0.02), "SRA-CL with alpha = beta = 0.02"),
    "sracl_k5": ("exploration", "llm_text", dict(alpha=0.1, beta=0.1, k=5),
        "SRA-CL with k = 5 neighbours instead of 10"),
    # The baselines under the reference preset, so that every reference row shares one protocol (all items
    # ranked, RecBole's early stopping, dropout 0.5): the plain rows above exclude the history.
    "ref_sasrec": ("baseline", None, dict(preset="reference", alpha=0.0, beta=0.0),
        "reference preset, SASRec (next-item loss only)"),
    "ref_cl4srec": ("baseline", None, dict(preset="reference", alpha=0.0, beta=0.1, intra_aug="cl4srec"),
        "reference preset, SASRec + CL4SRec views"),
    "ref_duorec": ("baseline", None, dict(preset="reference", alpha=0.0, beta=0.1, intra_aug="duorec"),
        "reference preset, SASRec + DuoRec (dropout pass vs a same-target prefix)"),
    # The authors' design (PRESETS["reference"]) on per-prefix tables from each source, and what carries
    # it: other users' prefixes only, uniform weights, cosine logits (ours). scripts/build_tables.py
    # builds the tables; on data without item text only the collaborative and random sources exist.
    "ref_llm": ("reference", "reference_llm_text", dict(preset="reference"), "reference preset, LLM item text"),
    "ref_template": ("reference", "reference_template_text", dict(preset="reference"),
        "reference preset, template text"),
    "ref_titles": ("reference", "reference_titles", dict(preset="reference"), "reference preset, item titles"),
    "ref_collab": ("reference", "reference_collaborative", dict(preset="reference"),
        "reference preset, collaborative (SVD) item vectors"),
    "ref_random": ("reference", "reference_random", dict(preset="reference"),
        "reference preset, random neighbours (other users' prefixes)"),
    "ref_llm_user": ("reference", "reference_llm_text_user", dict(preset="reference"),
        "reference preset, LLM item text, no same-user prefixes"),
    "ref_collab_user": ("reference", "reference_collaborative_user", dict(preset="reference"),
        "reference preset, collaborative vectors, no same-user prefixes"),
    "ref_llm_uniform": ("reference", "reference_llm_text", dict(preset="reference", synthesizer="uniform"),
        "reference preset, LLM item text, uniform synthesizer"),
    **{f"ref_llm_cos_t0{int(t * 10)}": ("reference", "reference_llm_text",
                                         dict(preset="reference", similarity="cosine", temperature=t),
                                         f"reference preset, LLM item text, cosine at temperature {t} (ours)")
       for t in (0.1, 0.2, 0.5)},
    # Clean ablations: each changes one part of the design (baselines.ablated_tables; build_tables.py
    # --ablations). ref_random changes four at once, ref_llm_uniform also drops the weights' dropout.
    **{f"ref_{short}_{ablation}": ("reference", f"reference_{source}_{ablation}", dict(preset="reference"),
                                   f"reference preset, {what}, {how}")
       for short, source, what in (("llm", "llm_text", "LLM item text"), ("collab", "collaborative",
                                                                           "collaborative vectors"))
       for ablation, how in (("randpool", "random pool neighbours of other users only"),
                             ("randsub", "random substitution neighbours only"),
                             ("norm20", "synthesizer inputs scaled to norm 20"))},
    **{f"ref_{short}_uniform_drop": ("reference", f"reference_{source}", dict(preset="reference",
                                                                             synthesizer="uniform_dropout"),
                                     f"reference preset, {source} tables, uniform weights with their dropout")
       for short, source in (("llm", "llm_text"), ("collab", "collaborative"))},
}.items()}


# Pairs worth a paired test: (variant, reference, what the difference measures).
COMPARISONS = [
    ("sracl", "sasrec", "SRA-CL vs its backbone"),
    ("sracl", "cl4srec", "semantic vs random-perturbation CL"),
    ("sracl_template", "sasrec", "SRA-CL without LLM vs its backbone"),
    ("sracl_template", "sracl", "ablation: LLM text replaced by the attribute template"),
    ("no_cross", "sracl", "ablation: cross-sequence CL removed"),
    ("no_intra", "sracl", "ablation: intra-sequence CL removed"),
    ("no_synth", "sracl", "ablation: learnable synthesizer removed"),
    ("random_nbrs", "sracl", "ablation: semantic retrieval replaced by random neighbours"),
    ("gru4rec_sracl", "gru4rec", "SRA-CL as a plug-in to GRU4Rec"),
]


def kept_rows(n: int, config: TrainConfig) -> np.ndarray:
    """Rows of the training prefixes that train: all, or `max_train_prefixes` of them drawn with the seed."""
    if config.max_train_prefixes is None or config.max_train_prefixes >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(config.seed).choice(n, config.max_train_prefixes, replace=False))


def trained_prefixes(ds, config: TrainConfig):
    """(users, lengths) of the training prefixes a Trainer of `config` trains on (notebook 05: neighbours
    are searched for these anchors only)."""
    prefixes = ds.train_prefixes(config.max_len)
    keep = kept_rows(len(prefixes.targets), config)
    return prefixes.users[keep], prefixes.lengths[keep]
