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


class Precision(str, Enum):
    BF16 = "bf16"   # frozen weights in bf16 + autocast; prompts and optimizer state stay fp32
    FP32 = "fp32"   # everything fp32 (bitwise-reproducible resume on CPU)


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
    eval_size: int = 64               # held-out examples for validation loss and generation metrics
    eval_every: int = 50
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
        if self.deep_mode not in ("cut", "carry"):
            raise ValueError(f"deep_mode must be 'cut' or 'carry', got {self.deep_mode!r}")
        self.deep_layers = tuple(int(i) for i in self.deep_layers)
        for name in ("n_tokens", "steps", "batch_size", "grad_accum", "max_length", "eval_size",
                     "eval_every", "checkpoint_every", "reference_texts", "max_new_tokens", "math_per_module"):
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
        """The fields that define *what* is computed (device and checkpoint cadence do not)."""
        d = self.to_dict()
        for k in ("device", "checkpoint_every"):
            d.pop(k)
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
