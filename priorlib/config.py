"""``TrainConfig``: everything that defines a training run, validated before any compute."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from enum import Enum


class Method(str, Enum):
    SOFT = "soft"
    DEEP = "deep"


class Schedule(str, Enum):
    LINEAR = "linear"       # warm-up, then linear decay to 0 at ``steps``
    CONSTANT = "constant"   # warm-up, then ``lr`` until the run stops (the schedule for stop_at_plateau)


class DeepLR(str, Enum):
    ACTIVATION_SCALE = "activation-scale"  # each deep block's lr times its layer's activation scale / the embeddings'
    SAME = "same"                          # every prompt tensor at ``lr`` (engine 1)


class Precision(str, Enum):
    BF16 = "bf16"   # frozen weights in bf16 + autocast; prompts and optimizer state stay fp32
    FP32 = "fp32"   # everything fp32 (bitwise-reproducible resume on CPU)


# The engine's version: part of every run's identity (its store key), bumped whenever a change would alter
# what a run computes. 2: evaluation on whole contexts (no answer-guided cropping), generation stops at a
# newline, SQuAD v1.1's F1 rule for empty answers, deep blocks' lr scaled to their layer (DeepLR), the
# plateau rule, BOS-safe deep carry, Gemma's sliding window in decoding.
ENGINE_VERSION = 2

MIN_MAX_LENGTH = 10  # the encoder keeps at least 8 prompt tokens, plus an answer token and EOS


def _check_device_name(device) -> None:
    """The device string's syntax (whether it exists here is checked when a run starts)."""
    import torch
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError, TypeError):
        kind = None
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be cpu, cuda, cuda:N or mps, got {device!r}")


def _enum(cls, value, what):
    try:
        return cls(value)
    except ValueError:
        raise ValueError(f"{what} must be one of {[m.value for m in cls]}, got {value!r}") from None


@dataclass
class TrainConfig:
    # what
    model: str = "smollm2-135m"
    task: str = "squad"              # a registered task (priorlib.tasks.TASKS): squad, math or your own
    method: Method = Method.SOFT
    deep_mode: str = "cut"
    deep_layers: tuple[int, ...] = (-3, -2, -1)
    token_prompt: bool = True
    n_tokens: int = 20
    # where prompts start
    prior: str = "isotropic"
    prior_params: dict = field(default_factory=dict)
    soft_space: str = "tokens"        # "tokens" or a hook point, e.g. "layers.0.resid_post" (activation prior)
    deep_prior: str | None = None     # prior of the activation-level blocks (default: ``prior``)
    deep_prior_params: dict | None = None
    interpolate_with: str = "web"     # the second domain of the interpolation prior (web | squad | math)
    reference_texts: int = 256        # texts whose activations define an activation reference
    # optimisation
    lr: float = 1e-3
    steps: int = 200
    batch_size: int = 8
    grad_accum: int = 1
    warmup_steps: int = 10
    schedule: Schedule = Schedule.LINEAR
    deep_lr: DeepLR = DeepLR.ACTIVATION_SCALE
    weight_decay: float = 0.0
    reg_prior_l2: float = 0.0         # penalties on the token-level prompt (see priorlib.regularisers)
    reg_mahalanobis: float = 0.0
    reg_mahalanobis_hinge: float = 0.0
    reg_nearest_token: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 256
    precision: Precision = Precision.BF16
    seed: int = 0
    # data and evaluation
    n_train: int | None = None        # cap on training examples (None: the whole split)
    eval_size: int = 200              # held-out examples for validation loss and generation metrics
    eval_max_length: int = 384        # held-out prompts longer than this minus max_new_tokens are left out, never cut
    eval_every: int = 50              # steps between periodic evaluations (the learning curve)
    plateau_eval_size: int = 64       # the curve's questions: the held-out set's first ones (a periodic evaluation
                                      # costs ~5 training steps instead of ~16 for all 200); step 0 and the end use all
    # stopping: the plateau rule, judged on the learning curve (plateau_loss) at every evaluation
    plateau_window: int = 3           # W: the evaluations the rule looks back over
    plateau_tol: float = 0.01         # eps: plateaued when the best of the last W evaluations improves on the
                                      # best before them by less than this share
    stop_at_plateau: bool = False     # stop as soon as the rule holds (``steps`` is then a cap); needs schedule=constant
    eval_generate: bool = True        # EM/F1 or accuracy by greedy decoding at start and end
    max_new_tokens: int = 24
    math_per_module: int = 2000
    checkpoint_every: int = 50
    device: str = "cpu"
    attn_implementation: str = "auto"   # auto: eager on CPU (faster there), sdpa on GPUs

    def __post_init__(self):
        from .tasks import check_task_name
        check_task_name(self.task)
        self.method = _enum(Method, self.method, "method")
        self.precision = _enum(Precision, self.precision, "precision")
        self.schedule = _enum(Schedule, self.schedule, "schedule")
        self.deep_lr = _enum(DeepLR, self.deep_lr, "deep_lr")
        if self.deep_mode not in ("cut", "carry"):
            raise ValueError(f"deep_mode must be 'cut' or 'carry', got {self.deep_mode!r}")
        self.deep_layers = tuple(int(i) for i in self.deep_layers)
        for name in ("n_tokens", "steps", "batch_size", "grad_accum", "max_length", "eval_size",
                     "eval_every", "checkpoint_every", "reference_texts", "max_new_tokens", "math_per_module",
                     "eval_max_length", "plateau_window", "plateau_eval_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("warmup_steps", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.n_train is not None and (not isinstance(self.n_train, int) or isinstance(self.n_train, bool)):
            raise ValueError(f"n_train must be an integer or None, got {self.n_train!r}")
        if self.n_train is not None and self.n_train < self.batch_size:
            raise ValueError(f"n_train={self.n_train} cannot fill one batch of {self.batch_size}")
        if not isinstance(self.stop_at_plateau, bool):
            raise ValueError(f"stop_at_plateau must be true or false, got {self.stop_at_plateau!r}")
        if isinstance(self.plateau_tol, bool) or not isinstance(self.plateau_tol, (int, float)) \
                or not 0 < self.plateau_tol < 1:
            raise ValueError(f"plateau_tol must be a share between 0 and 1, got {self.plateau_tol!r}")
        if self.stop_at_plateau and self.schedule is not Schedule.CONSTANT:
            raise ValueError("stop_at_plateau needs schedule='constant': under a decaying learning rate every curve "
                             "flattens, so the schedule, not the prompt, would make the plateau")
        if self.eval_max_length <= self.max_new_tokens + 8:
            raise ValueError(f"eval_max_length={self.eval_max_length} leaves no room for a prompt beside "
                             f"max_new_tokens={self.max_new_tokens}")
        if self.max_length < MIN_MAX_LENGTH:
            raise ValueError(f"max_length must be at least {MIN_MAX_LENGTH} (8 prompt tokens and the answer), "
                             f"got {self.max_length}")
        from .regularisers import REGULARISERS
        for name in ("lr", "max_grad_norm", *(r.field for r in REGULARISERS.values())):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0 or self.max_grad_norm <= 0:
            raise ValueError(f"weight_decay must be >= 0 (got {self.weight_decay}) and max_grad_norm > 0 "
                             f"(got {self.max_grad_norm})")
        _check_device_name(self.device)
        from .hooks import _POINT
        if self.soft_space != "tokens" and not (isinstance(self.soft_space, str) and _POINT.match(self.soft_space)):
            raise ValueError(f"soft_space must be 'tokens' or a hook point such as 'layers.0.resid_post' "
                             f"(embed, final_norm, layers.K.resid_pre, layers.K.resid_post), got {self.soft_space!r}")
        self.regularisers()  # weights >= 0
        if any(w > 0 for w in vars(self.regularisers()).values()) and not (
                self.method is Method.SOFT or self.token_prompt):
            raise ValueError("the prompt regularisers act on the token-level prompt, which this run does not have")
        has_soft = self.method is Method.SOFT or self.token_prompt
        if self.prior == "interpolation" and has_soft and self.soft_space == "tokens":
            raise ValueError("the interpolation prior mixes two activation spaces: give it to the deep blocks "
                             "(--deep-prior interpolation) or put the soft prompt in one (--soft-space layers.K.resid_post)")
        if self.interpolate_with not in ("web", "squad", "math"):
            raise ValueError(f"interpolate_with must be web, squad or math, got {self.interpolate_with!r}")
        if self.method is Method.DEEP and self.deep_mode == "carry" and not self.token_prompt:
            raise ValueError("deep mode 'carry' needs the token-level prompt (token_prompt=True)")
        from .models import check_model_name, resolve_attention
        resolve_attention(self.attn_implementation, "cpu")  # a bad value fails here
        from .priors import parse_params
        check_model_name(self.model)
        self.prior_params = _typed(self.prior, self.prior_params, parse_params)
        if self.deep_prior is not None or self.deep_prior_params is not None:
            self.deep_prior_params = _typed(self.deep_prior or self.prior, self.deep_prior_params or {}, parse_params)

    def regularisers(self):
        from .regularisers import RegulariserWeights
        return RegulariserWeights.from_config(self)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, Enum):
                d[k] = v.value
            elif isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**d)

    def identity(self) -> dict:
        """The fields that define *what* is computed (device and checkpoint cadence do not), plus the engine
        version, so a run computed by older code is never taken for a run of this one."""
        d = self.to_dict()
        for k in ("device", "checkpoint_every"):
            d.pop(k)
        d["engine"] = ENGINE_VERSION
        return d

    def key(self) -> str:
        """Hash of :meth:`identity`: the run store's folder name."""
        blob = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _typed(prior: str, params: dict, parse_params) -> dict:
    """Validate prior params now (a bad value fails before any compute); keep plain JSON values."""
    strings = {k: v for k, v in params.items() if isinstance(v, str)}
    parse_params(prior, strings)  # raises on unknown prior, unknown key or bad value
    from .priors import make_params
    others = {k: v for k, v in params.items() if not isinstance(v, str)}
    if others:
        make_params(prior, others)
    return dict(params)
