"""``TrainConfig``: everything that defines a training run, validated before any compute."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
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


from . import engine
from .engine import ENGINE_VERSION  # noqa: F401  (re-exported: priorlib.config.ENGINE_VERSION)

MIN_MAX_LENGTH = 10  # the encoder keeps at least 8 prompt tokens, plus an answer token and EOS


# the syntax of a hook point's name (priorlib.hooks resolves it on a model); here so a config is checked without torch
POINT_SYNTAX = re.compile(r"^(embed|final_norm|layers\.(-?\d+)\.(resid_pre|resid_post))$")
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


def _check_device_name(device) -> None:
    """The device string's syntax, without importing torch (whether it exists here is checked when a run
    starts)."""
    if not (isinstance(device, str) and _DEVICE.match(device)):
        raise ValueError(f"device must be cpu, cuda, cuda:N or mps, got {device!r}")


# the priors priorlib registers itself (tests/test_priors.py keeps this equal to the registry's built-ins)
BUILTIN_PRIORS = ("isotropic", "xavier", "fitted-gaussian", "exclusion", "exclusion-radius", "interpolation", "vae",
                  "vocab-sample", "text", "low-density", "posterior")


def _check_prior_name(name) -> None:
    """An unknown prior fails without importing torch; a prior registered by the user is in the registry,
    which is loaded already (registering imported it)."""
    import sys
    if name is None or name in BUILTIN_PRIORS or "priorlib.priors" in sys.modules:
        return  # parse_params checks it against the registry itself
    raise ValueError(f"unknown prior {name!r}; choose one of: {', '.join(BUILTIN_PRIORS)}")


def _f(default, help: str):
    """A config field with its help text (PEFT-style); a type such as ``dict`` as default is a factory."""
    if default is dict:
        return field(default_factory=dict, metadata={"help": help})
    return field(default=default, metadata={"help": help})


def _enum(cls, value, what):
    try:
        return cls(value)
    except ValueError:
        raise ValueError(f"{what} must be one of {[m.value for m in cls]}, got {value!r}") from None


@dataclass
class TrainConfig:
    """Everything that defines one training run; every field is checked here, before any compute.

        cfg = TrainConfig(task="squad", prior="vocab-sample", lr=1e-2, schedule="constant", stop_at_plateau=True)
        cfg.key()                      # the run store's folder name: a hash of cfg.identity()
        TrainConfig.help("plateau_tol")  # the help text ``priorlib train --help`` shows
    """
    # what
    model: str = _f("smollm2-135m", "a registered model (priorlib models lists them)")
    task: str = _f("squad", "a registered task (priorlib.tasks.TASKS): squad, math or your own")
    method: Method = _f(Method.SOFT, "soft (token-level prompt) | deep (activation-level blocks too)")
    deep_mode: str = _f("cut", "cut (the paper's: blocks prepended to a layer's input, cut from its output) | carry")
    deep_layers: tuple[int, ...] = _f((-3, -2, -1), "layers that get a deep block (negative: from the top)")
    token_prompt: bool = _f(True, "deep runs also train the token-level prompt")
    n_tokens: int = _f(20, "prompt vectors per tensor")
    # where prompts start
    prior: str = _f("isotropic", "the prior the prompt is drawn from (priorlib.priors.PRIORS)")
    prior_params: dict = _f(dict, "the prior's parameters, e.g. {'sigma': '0.02'}")
    soft_space: str = _f("tokens", "tokens, or a hook point such as layers.0.resid_post (an activation prior)")
    deep_prior: str | None = _f(None, "prior of the activation-level blocks (default: prior)")
    deep_prior_params: dict | None = _f(None, "its parameters (default: prior_params)")
    interpolate_with: str = _f("web", "the second domain of the interpolation prior (web | squad | math)")
    reference_texts: int = _f(256, "texts whose activations define an activation reference")
    # optimisation
    lr: float = _f(1e-3, "peak learning rate")
    steps: int = _f(200, "optimizer steps (the cap with stop_at_plateau)")
    batch_size: int = _f(8, "examples per step")
    grad_accum: int = _f(1, "micro-batches per step")
    warmup_steps: int = _f(10, "steps of linear warm-up")
    schedule: Schedule = _f(Schedule.LINEAR, "linear (decay to 0 at steps) | constant (after warm-up)")
    deep_lr: DeepLR = _f(DeepLR.ACTIVATION_SCALE, "activation-scale (each deep block's lr times its layer's "
                         "activation scale over the embeddings') | same")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    reg_prior_l2: float = _f(0.0, "penalty weight: L2 to the prompt's own prior sample (priorlib.regularisers)")
    reg_mahalanobis: float = _f(0.0, "penalty weight: Mahalanobis pull into the token embeddings' Gaussian")
    reg_mahalanobis_hinge: float = _f(0.0, "penalty weight: push out of that Gaussian's 95% region")
    reg_nearest_token: float = _f(0.0, "penalty weight: distance to the nearest token embedding")
    max_grad_norm: float = _f(1.0, "gradient clipping norm")
    max_length: int = _f(256, "training sequence length; a longer context is cut around its answer")
    precision: Precision = _f(Precision.BF16, "bf16 (weights and autocast) | fp32 (bitwise-reproducible resume)")
    seed: int = _f(0, "prior sample and data order")
    # data and evaluation
    n_train: int | None = _f(None, "cap on training examples (None: the whole split)")
    eval_size: int = _f(200, "held-out questions, the same for every run")
    eval_max_length: int = _f(384, "held-out prompts longer than this minus max_new_tokens are left out, never cut")
    eval_every: int = _f(50, "steps between periodic evaluations (the learning curve)")
    plateau_eval_size: int = _f(64, "the curve's questions, the held-out set's first ones (a periodic evaluation "
                                "then costs ~5 training steps, not ~16); step 0 and the end use all")
    # stopping: the plateau rule, judged on the learning curve (plateau_loss) at every evaluation
    plateau_window: int = _f(3, "W: the evaluations the plateau rule looks back over")
    plateau_tol: float = _f(0.01, "eps: plateaued when the best of the last W evaluations improves on the best "
                            "before them by less than this share")
    stop_at_plateau: bool = _f(False, "stop as soon as the plateau rule holds (steps is then a cap); needs "
                               "schedule=constant")
    eval_generate: bool = _f(True, "EM/F1 or accuracy by greedy decoding of the final prompt")
    generate_initial: bool = _f(False, "also decode with the untrained prompt at step 0 (one more generation pass, "
                                "the costliest part of an evaluation; its validation loss is always scored)")
    max_new_tokens: int = _f(24, "longest greedy answer (it also stops at a newline)")
    fused_eval: bool = _f(False, "score the final held-out set and decode it from one forward over its prompts "
                          "(tasks.fused_scores): one pass instead of two; its losses come from the decoding "
                          "layout, equal up to rounding")
    math_per_module: int = _f(2000, "MATH training problems per arithmetic module")
    checkpoint_every: int = _f(50, "steps between checkpoints (the scrubber's frames)")
    device: str = _f("cpu", "cpu, cuda, cuda:N or mps")
    compile: bool = _f(True, "torch.compile each decoder layer for training and validation passes (priorlib.compiled; "
                       "not part of the run's identity, like device; PRIORLIB_COMPILE=0 turns it off)")
    attn_implementation: str = _f("auto", "auto (eager on CPU, faster there; sdpa on GPUs) | eager | sdpa")

    @classmethod
    def help(cls, name: str) -> str:
        """A field's help text and default, as the command line shows it."""
        f = {f.name: f for f in dataclasses.fields(cls)}[name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = default.value if isinstance(default, Enum) else default
        return f"{f.metadata['help']} (default: {shown})"

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
        if not isinstance(self.generate_initial, bool):
            raise ValueError(f"generate_initial must be true or false, got {self.generate_initial!r}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be true or false, got {self.compile!r}")
        if not isinstance(self.stop_at_plateau, bool):
            raise ValueError(f"stop_at_plateau must be true or false, got {self.stop_at_plateau!r}")
        if isinstance(self.plateau_tol, bool) or not isinstance(self.plateau_tol, (int, float)) \
                or not 0 < self.plateau_tol < 1:
            raise ValueError(f"plateau_tol must be a share between 0 and 1, got {self.plateau_tol!r}")
        if not isinstance(self.fused_eval, bool):
            raise ValueError(f"fused_eval must be true or false, got {self.fused_eval!r}")
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
        if self.soft_space != "tokens" and not (isinstance(self.soft_space, str) and POINT_SYNTAX.match(self.soft_space)):
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
        check_model_name(self.model)
        for name in (self.prior, self.deep_prior):
            _check_prior_name(name)
        from .priors import parse_params  # torch: only for a config whose other fields are good
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
        """The fields that define *what* is computed (device, compilation and checkpoint cadence do not), plus the engine
        version, so a run computed by older code is never taken for a run of this one."""
        d = self.to_dict()
        for k in ("device", "checkpoint_every", "compile"):
            d.pop(k)
        for k, default in _LATER_FIELDS.items():  # added after engine 3: keys of runs that leave them unset stay
            if d[k] == default:
                d.pop(k)
        d["engine"] = engine.ENGINE_VERSION
        return d

    def key(self) -> str:
        """Hash of :meth:`identity`: the run store's folder name."""
        blob = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# fields added after engine 3 enter a run's identity only when set, so the runs made before them keep their keys
_LATER_FIELDS = {"fused_eval": False}


def _typed(prior: str, params: dict, parse_params) -> dict:
    """Validate prior params now (a bad value fails before any compute); keep plain JSON values."""
    strings = {k: v for k, v in params.items() if isinstance(v, str)}
    parse_params(prior, strings)  # raises on unknown prior, unknown key or bad value
    from .priors import make_params
    others = {k: v for k, v in params.items() if not isinstance(v, str)}
    if others:
        make_params(prior, others)
    return dict(params)
