"""Typed run configuration: YAML <-> pydantic, unknown keys rejected, presets, ``--set key=value``.

A run is described by one :class:`RunConfig`; every run writes its resolved config next to its
checkpoints. Presets are YAML files in ``argusrec/presets/`` loaded by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from argusrec.errors import ArgusrecError

if TYPE_CHECKING:
    import numpy as np

PRESETS_DIR = Path(__file__).parent / "presets"


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Config):
    """Which prepared dataset, which protocol, how histories are cut."""

    path: str = Field(description="prepared dataset directory (argusrec data prepare / simulate)")
    split: Literal["leave_one_out", "temporal"] = "leave_one_out"
    max_len: int = Field(50, ge=2, description="events per training chunk and per evaluation history")
    min_events: int = Field(3, ge=3, description="leave-one-out: users with fewer events only train")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="temporal: share of events after the test cut-off")
    valid_fraction: float = Field(0.1, ge=0, lt=1, description="temporal: share of events in the validation period")
    gap: int = Field(0, ge=0, description="temporal: seconds before each cut-off excluded from targets")
    max_chunks_per_user: int | None = Field(None, ge=1, description="None = every non-overlapping chunk")


class ModelConfig(_Config):
    """The sequence encoder and the item embedding."""

    kind: Literal["sasrec", "llama", "hstu", "fuxi", "bsarec"] = Field(
        "sasrec",
        description="bsarec mixes its whole history window (not causal): it needs train.targets: last",
    )
    dim: int = Field(64, ge=2)
    layers: int = Field(2, ge=1)
    heads: int = Field(1, ge=1)
    ffn_dim: int | None = Field(None, ge=1, description="transformer FFN width (default 4 x dim; SASRec: dim)")
    qk_dim: int | None = Field(None, ge=1, description="HSTU/FuXi per-head query/key width (default dim / heads)")
    v_dim: int | None = Field(None, ge=1, description="HSTU/FuXi per-head value width (default dim / heads)")
    dropout: float = Field(0.2, ge=0, lt=1)
    hstu_variant: Literal["research", "production"] = "research"
    item_embedding: Literal["id", "hashed"] = "id"
    hash_buckets: int = Field(1 << 18, ge=16, description="unified hashed embedding table rows")
    num_hashes: int = Field(3, ge=1)
    normalize: bool = Field(False, description="L2-normalise user and item vectors (HSTU recipe)")
    init: Literal["default", "xavier", "normal"] = Field(
        "default",
        description="default: each module's own (tables N(0, 0.02)); xavier: Xavier-normal on every matrix, "
        "embedding tables included (RecTools' SASRec); normal: N(0, 0.02) on every matrix, biases zero (BERT, "
        "the BSARec code)",
    )
    input_scale: bool | None = Field(
        None, description="multiply item embeddings by sqrt(dim) before the encoder; unset = the kind's convention"
    )
    frequency_bins: int = Field(
        3, ge=1, description="bsarec: lowest rFFT bins of the max_len window its low-pass keeps (BSARec's c=5 -> 3)"
    )
    frequency_mix: float = Field(
        0.7, ge=0, le=1, description="bsarec: weight of the frequency-filter branch against attention (alpha)"
    )
    empty_state: bool = Field(
        False,
        description="learn a user state for an empty history; with train.targets: last each user's first training "
        "event becomes a target too, predicted from it (the BSARec code's samples)",
    )
    residual: Literal["pre_norm", "normed"] = Field(
        "pre_norm",
        description="sasrec blocks: pre-norm (x + f(norm(x))), or the original SASRec code's residual from the "
        "normalised input with un-normalised keys / values (RecTools)",
    )
    attend_padding: bool = Field(
        False,
        description="sasrec: every query also attends to the max_len - n padding slots of its window, whose "
        "input is zero, as RecTools' SASRec does (no key padding mask): a learned way to attend to nothing that "
        "grows as the history gets shorter",
    )
    padding_content: bool = Field(
        False,
        description="bsarec: as the BSARec code, every history is left-padded to the max_len window and the padding "
        "slots hold the normalised position vectors; every block runs on them, the filter mixes them into the real "
        "slots, and padded queries attend to their whole row. Costs the whole window's compute in every batch",
    )

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelConfig:
        if self.dim % self.heads:
            raise ValueError(f"model.heads={self.heads} does not divide model.dim={self.dim}")
        if self.residual != "pre_norm" and self.kind != "sasrec":
            raise ValueError(f"model.residual={self.residual!r} applies to kind 'sasrec' only, not {self.kind!r}")
        if self.attend_padding and self.kind != "sasrec":
            raise ValueError(f"model.attend_padding applies to kind 'sasrec' only, not {self.kind!r}")
        if self.padding_content and self.kind != "bsarec":
            raise ValueError(f"model.padding_content applies to kind 'bsarec' only, not {self.kind!r}")
        if self.kind == "hstu" and self.ffn_dim is not None:
            raise ValueError("model.ffn_dim is set but HSTU layers have no feed-forward network; leave it unset")
        return self


class LossConfig(_Config):
    """Next-item prediction loss."""

    kind: Literal["sampled_softmax", "full_softmax"] = "sampled_softmax"
    uniform_negatives: int = Field(256, ge=0)
    in_batch_negatives: bool = False
    uniform_sharing: Literal["batch", "position"] = Field(
        "batch",
        description="batch: one set of uniform negatives shared by every position of a batch (ARGUS); "
        "position: each position draws its own (RecTools/eSASRec SASRec; no in-batch negatives; M x R x D memory)",
    )
    logq: bool = Field(False, description="subtract log Q(j) of the negative sampler (ARGUS recipe)")
    temperature: float | Literal["learned"] = Field(0.05, description="fixed value, or 'learned' (clipped)")
    similarity: Literal["dot", "cosine"] | None = Field(
        None,
        description="unset: next-item models follow model.normalize (cosine when normalised), ARGUS uses dot; "
        "set for a next-item model, it must agree with model.normalize",
    )

    @model_validator(mode="after")
    def _has_negatives(self) -> LossConfig:
        if self.kind == "sampled_softmax" and self.uniform_negatives == 0 and not self.in_batch_negatives:
            raise ValueError("sampled softmax needs loss.uniform_negatives > 0 or loss.in_batch_negatives: true")
        if self.uniform_sharing == "position" and (self.in_batch_negatives or self.uniform_negatives == 0):
            raise ValueError(
                "loss.uniform_sharing: position draws uniform negatives for every position: it needs "
                "loss.uniform_negatives > 0 and loss.in_batch_negatives: false"
            )
        if isinstance(self.temperature, float) and not 0.01 <= self.temperature <= 100:
            raise ValueError(f"loss.temperature={self.temperature} outside [0.01, 100]")
        return self


class OptimConfig(_Config):
    """AdamW and the learning-rate schedule."""

    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float | None = Field(1.0, gt=0, description="max global gradient norm; None = off")


class TrainConfig(_Config):
    """The training loop."""

    epochs: int = Field(100, ge=1)
    batch_size: int = Field(128, ge=1)
    seed: int = 0
    eval_every: int = Field(1, ge=1, description="validate every N epochs")
    patience: int | None = Field(10, ge=1, description="early stopping: evaluations without improvement")
    monitor: str = Field("valid/NDCG@10", description="validation metric for early stopping and best checkpoint")
    monitor_mode: Literal["max", "min"] = Field("max", description="max: higher is better (NDCG); min: losses")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    bf16: bool = Field(True, description="bf16 autocast on CUDA (ignored on CPU)")
    compile: bool = False
    activation_checkpointing: bool = Field(
        False,
        description="recompute each transformer block's activations in the backward pass instead of storing them: "
        "less memory (long histories, argus-1b full), about one more forward pass per step; results unchanged",
    )
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")
    release_memory_every: int | None = Field(
        500,
        ge=1,
        description="CPU runs: every N optimizer steps, hand the memory the allocator keeps after freeing back to "
        "the system (glibc malloc_trim; batches of changing shapes otherwise grow the process to several GiB; "
        "each call costs a little speed, docs/benchmarks.md); null: never",
    )
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps (smoke runs)")
    targets: Literal["all", "last"] = Field(
        "all",
        description="all: each history is cut into chunks whose every position predicts the next event (SASRec); "
        "last: one sample per training event after each user's first, the up-to-max_len events before it as "
        "input, the loss at the last position only (prefix augmentation, close to the BSARec / DuoRec code, see the "
        "bsarec presets): more encoder work (about 7x on Amazon Beauty), needed by model.kind: bsarec",
    )
    ema_decay: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="keep an exponential moving average of the weights with this decay per optimizer step (e.g. "
        "0.999; ramped in: it spans about the last n/9 of the first n steps until the decay holds, after ~9,000 "
        "steps for 0.999) and validate, keep as best.pt and end with the averaged weights "
        "(argusrec/training/averaging.py); null: the raw weights; single-process runs only",
    )
    log_every: int = Field(50, ge=1, description="optimizer steps between loss log lines")
    bucket_batches: int | None = Field(
        64,
        ge=1,
        description="batch chunks of similar length, sorting windows of this many batches; None = off (randomly "
        "mixed batches). Bucketing saves padding but can cost quality: SASRec on Amazon Beauty lost 9% of valid "
        "NDCG@10 with it (docs/benchmarks.md), so the leave-one-out Amazon presets turn it off",
    )
    strategy: Literal["auto", "single", "ddp", "fsdp"] = Field(
        "auto",
        description=(
            "multi-process training under torchrun (docs/distributed.md): auto = ddp when launched with "
            "WORLD_SIZE > 1, else single; ddp = replicated weights, averaged gradients; fsdp = FSDP2, weights, "
            "gradients and Adam states sharded per transformer block (large presets); ddp/fsdp need torchrun"
        ),
    )


class EvalConfig(_Config):
    ks: tuple[int, ...] = (10, 50)
    filter_history: bool = Field(True, description="remove the user's history items from the ranking")
    batch_size: int = Field(512, ge=1)
    sampled_negatives: int | None = Field(
        None, ge=1, description="also rank against this many sampled items; reported as <split>/sampledR/..."
    )


class ArgusConfig(_Config):
    """ARGUS pre-training (reference/ARGUS.md): used when ``task: argus``; model sizes come from ``model``."""

    variant: Literal["full", "simplified"] = Field("simplified", description="3 tokens per event, or 1 (≈3x faster)")
    encoder: Literal["transformer", "hstu"] = "transformer"
    retrieval_dim: int | None = Field(None, ge=1, description="NIP query / item vector width (default model.dim)")
    combine: Literal["sum", "concat"] = Field("sum", description="simplified: how (context, item, feedback) merge")
    nip_on: Literal["all", "positives"] = Field("all", description="NIP on every event, or positives only (ablation)")
    positive_signal: str | None = Field(None, description="feedback column that defines a positive event")
    positive_threshold: float = Field(0.5, description="positive when positive_signal >= this")
    use_context: bool = Field(True, description="False = the SASRec-style ablation without context")
    feedback_prediction: bool = Field(True, description="train the FP head (off when the data has no feedback)")
    fp_weights: dict[str, float] = Field(default_factory=dict, description="per-signal FP loss weights (default 1)")
    nip_weight: float = Field(1.0, ge=0)
    time_features: bool = True
    fp_bilinear_rank: int = Field(
        0, ge=0, description="rank of a per-signal bilinear user x item term added to the FP logits; 0 = MLP only"
    )


class _FrozenConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GradeRule(_FrozenConfig):
    """``grade`` when ``signal op value`` (NaN = not observed never matches)."""

    grade: str
    signal: str
    op: Literal[">=", ">", "<=", "<", "=="] = ">="
    value: float = 0.5


class PairConfig(_FrozenConfig):
    """How impressions are found, graded, grouped and paired (:mod:`argusrec.finetune.pairs`)."""

    grades: dict[str, float] = Field(description="grade name -> level; higher = better feedback")
    rules: tuple[GradeRule, ...] = Field(description="tried in order; the first that holds gives the grade")
    default_grade: str | None = Field(None, description="grade when no rule holds; None = ungraded (no pairs)")
    weights: dict[str, float] = Field(default_factory=dict, description="'better>worse' -> pair weight")
    default_weight: float | None = Field(1.0, ge=0, description="weight of pairs not in `weights`; None = level gap")
    group_by: Literal["auto", "request", "window"] = "auto"
    window_s: int = Field(3600, ge=1, description="group_by=window: window length in seconds")
    impression_context: dict[str, tuple[str | int, ...]] = Field(
        default_factory=dict, description="context column -> values marking recommendation traffic (names or codes)"
    )

    @model_validator(mode="after")
    def _check(self) -> PairConfig:
        if len(self.grades) < 2:
            raise ValueError(f"grades needs at least two grades to form pairs, got {sorted(self.grades)}")
        known = set(self.grades)
        named = [r.grade for r in self.rules] + ([self.default_grade] if self.default_grade is not None else [])
        unknown = sorted({g for g in named if g not in known})
        if unknown:
            raise ValueError(f"rules / default_grade name unknown grades {unknown}; grades: {sorted(known)}")
        if not self.rules:
            raise ValueError("rules must hold at least one GradeRule (which feedback makes which grade)")
        for key, w in self.weights.items():
            better, sep, worse = key.partition(">")
            if not sep or better not in known or worse not in known:
                raise ValueError(f"weights key {key!r} must be 'better>worse' with known grades {sorted(known)}")
            if self.grades[better] <= self.grades[worse]:
                raise ValueError(f"weights key {key!r}: {better!r} must have a higher level than {worse!r}")
            if w < 0:
                raise ValueError(f"weights[{key!r}] must be >= 0, got {w}")
        return self

    @classmethod
    def music(cls, **overrides: object) -> PairConfig:
        """The music-streaming default for the simulator's signals (``like``, ``dislike``, ``skip``).

        like (3) > listen (2, nothing else) > skip (1) > dislike (0); a like against a skip weighs 3, a listen
        against a skip 1 (ARGUS.md §5: like-vs-skip weighs more than listen-vs-skip).
        """
        args: dict[str, object] = dict(
            grades={"like": 3.0, "listen": 2.0, "skip": 1.0, "dislike": 0.0},
            rules=(
                GradeRule(grade="like", signal="like"),
                GradeRule(grade="dislike", signal="dislike"),
                GradeRule(grade="skip", signal="skip"),
            ),
            default_grade="listen",
            weights={
                "like>skip": 3.0,
                "like>dislike": 4.0,
                "like>listen": 1.0,
                "listen>skip": 1.0,
                "listen>dislike": 2.0,
                "skip>dislike": 1.0,
            },
        )
        args.update(overrides)
        return cls.model_validate(args)

    @classmethod
    def binary(cls, signal: str, threshold: float = 0.5, **overrides: object) -> PairConfig:
        """Two grades from one signal: ``positive`` (``signal >= threshold``) beats ``negative`` (observed, below)."""
        args: dict[str, object] = dict(
            grades={"positive": 1.0, "negative": 0.0},
            rules=(
                GradeRule(grade="positive", signal=signal, op=">=", value=threshold),
                GradeRule(grade="negative", signal=signal, op="<", value=threshold),
            ),
        )
        args.update(overrides)
        return cls.model_validate(args)

    # ------------------------------------------------------------------------------------------ derived
    @property
    def grade_names(self) -> list[str]:
        return list(self.grades)

    def weight_matrix(self) -> np.ndarray:
        """(K, K) float64 weight of a pair (better grade k, worse grade l); 0 where k is not better than l."""
        import numpy as np  # here: the config module itself stays free of numpy

        names = self.grade_names
        level = np.array([self.grades[n] for n in names], dtype=np.float64)  # (K,)
        gap = level[:, None] - level[None, :]  # (K, K)
        w = np.where(gap > 0, gap if self.default_weight is None else self.default_weight, 0.0)
        for key, value in self.weights.items():
            better, _, worse = key.partition(">")
            w[names.index(better), names.index(worse)] = value
        return w


class FinetuneConfig(_Config):
    """ARGUS fine-tuning (reference/ARGUS.md §5, docs/finetune.md): used when ``task: finetune``.

    The architecture is the run's ``model`` / ``argus`` / ``data.max_len`` (those of the pre-training run); epochs,
    batch size and early stopping are ``train``'s (monitor ``valid/PairAccuracy_weighted``, mode max).
    """

    checkpoint: str | None = Field(
        description="pre-training run directory (its checkpoints/best.pt) or a checkpoint file; null = no "
        "pre-training (ablation: the same architecture, randomly initialised)"
    )
    pairs: PairConfig = Field(default_factory=PairConfig.music, description="impressions, grades, groups, weights")
    lag: int = Field(86_400, ge=0, description="seconds between an impression and the newest event its user state sees")
    min_len: int = Field(4, ge=1, description="drop examples whose history window is shorter (events)")
    max_impressions: int = Field(256, ge=2, description="most impressions per example; larger groups are dropped")
    item_tower: Literal["mlp", "nip"] = Field("mlp", description="item embedding + MLP, or ARGUS's NIP item vectors")
    dim: int | None = Field(None, ge=1, description="user / item vector width (item_tower=mlp; default model.dim)")
    train_fraction: float = Field(
        1.0, gt=0, le=1, description="run this share of the train.epochs x batches steps (shorter fine-tuning ablation)"
    )
    export_vectors: bool = Field(False, description="also export per-impression user and item vectors for the ranker")


class RunConfig(_Config):
    """Everything a training run needs; written resolved to ``<run dir>/config.yaml``."""

    name: str = "run"
    output_dir: str = "runs"
    task: Literal["next_item", "argus", "finetune"] = Field(
        "next_item", description="SASRec/HSTU-style, ARGUS pre-training, or ARGUS fine-tuning"
    )
    data: DataConfig
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    argus: ArgusConfig = ArgusConfig()
    finetune: FinetuneConfig | None = Field(None, description="task: finetune only")

    @model_validator(mode="after")
    def _similarity_agrees(self) -> RunConfig:
        """Resolve loss.similarity. Next-item models score by cosine by L2-normalising their own vectors
        (model.normalize): unset, it follows model.normalize; set, the two keys must say the same thing. ARGUS reads
        loss.similarity alone (unset: dot, the article's)."""
        if self.loss.similarity is None:
            cosine = self.task == "next_item" and self.model.normalize
            self.loss.similarity = "cosine" if cosine else "dot"
        elif self.task == "next_item" and (self.loss.similarity == "cosine") != self.model.normalize:
            raise ValueError(
                f"loss.similarity={self.loss.similarity} and model.normalize={str(self.model.normalize).lower()} "
                "disagree: a next-item model computes cosine scores by normalising its vectors; set "
                "model.normalize=true with loss.similarity=cosine, or model.normalize=false with loss.similarity=dot"
            )
        return self

    @model_validator(mode="after")
    def _window_models(self) -> RunConfig:
        if self.task != "next_item" and (self.model.kind == "bsarec" or self.train.targets == "last"):
            raise ValueError(
                f"model.kind=bsarec and train.targets=last are next-item settings; task: {self.task} builds its "
                "encoder from the argus section and trains on every position"
            )
        if self.train.targets == "last" and self.data.max_chunks_per_user is not None:
            raise ValueError(
                "data.max_chunks_per_user limits the chunks of train.targets=all; with train.targets=last every "
                "training event is a sample: unset it"
            )
        if self.model.empty_state and (self.task != "next_item" or self.train.targets != "last"):
            raise ValueError(
                "model.empty_state trains a state for users without history on the first training event of each "
                "user, which only train.targets=last samples (task: next_item): set both, or unset model.empty_state"
            )
        if self.task == "next_item" and self.model.kind == "bsarec":
            if self.train.targets != "last":
                raise ValueError(
                    "model.kind=bsarec mixes its whole history window (its frequency filter is not causal), so every "
                    "position but the last has seen later events: set train.targets=last"
                )
            if self.model.frequency_bins > self.data.max_len // 2 + 1:
                raise ValueError(
                    f"model.frequency_bins={self.model.frequency_bins}: a window of data.max_len={self.data.max_len} "
                    f"has only {self.data.max_len // 2 + 1} rFFT bins"
                )
        return self

    @model_validator(mode="after")
    def _finetune_section(self) -> RunConfig:
        if self.task == "finetune" and self.finetune is None:
            raise ValueError(
                "task: finetune needs a finetune section (at least finetune.checkpoint: a pre-training run "
                "directory, or null for the no-pre-training ablation)"
            )
        return self

    @property
    def similarity(self) -> Literal["dot", "cosine"]:
        """loss.similarity as validation resolved it (never unset on a RunConfig)."""
        assert self.loss.similarity is not None
        return self.loss.similarity

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json")
        if data.get("finetune") is None:
            data.pop("finetune", None)  # configs of other tasks read as before
        return yaml.safe_dump(data, sort_keys=False)


def load_config(source: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Load a run config from a YAML file or a preset name, apply ``key.path=value`` overrides, validate.

    Errors name the offending key: unknown keys, impossible values, malformed overrides.
    """
    data = _read_yaml(source)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ArgusrecError(f"bad override {item!r}: expected key.path=value, e.g. train.epochs=5")
        _set_path(data, key.strip().split("."), yaml.safe_load(raw) if raw.strip() else None, item)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ArgusrecError(f"invalid config {source}:\n{_explain(e)}") from None


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def _read_yaml(source: str | Path) -> dict[str, Any]:
    path = Path(source)
    if not path.is_file():
        preset = PRESETS_DIR / f"{source}.yaml"
        if not preset.is_file():
            raise ArgusrecError(f"no config file or preset named {str(source)!r}; presets: {', '.join(preset_names())}")
        path = preset
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ArgusrecError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ArgusrecError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _set_path(data: dict[str, Any], keys: list[str], value: Any, item: str) -> None:
    node = data
    for k in keys[:-1]:
        child = node.setdefault(k, {})
        if child is None:  # an empty optional section (e.g. finetune: null) gets its first key
            child = node[k] = {}
        if not isinstance(child, dict):
            raise ArgusrecError(f"bad override {item!r}: {k!r} is not a section")
        node = child
    node[keys[-1]] = value


def _explain(e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)
