"""``priorlib train``: one prompt-tuning run from the command line.

    priorlib train --model smollm2-135m --task squad --method soft --prior vocab-sample \\
        --lr 1e-3 --steps 200 --batch-size 8 --out runs/squad-vocab

Every argument is validated (model, prior and its params, layer indices, positive counts, the output
folder, the device, the data files and any posterior bank) before the model loads; a bad value is one
line on stderr naming it, and nothing is written to ``--out`` until every check has passed. A second
process writing to the same ``--out`` fails at once naming the holder (``--wait`` queues behind it).
"""
from __future__ import annotations

import argparse
import json
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import TrainConfig


def _kv(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def _field(p: argparse.ArgumentParser, name: str, **kw) -> None:
    """``--name-with-dashes`` for the TrainConfig field ``name``: its default and help text come from the
    config itself, so the command line and the Python API cannot disagree."""
    import dataclasses
    from .config import TrainConfig
    f = {f.name: f for f in dataclasses.fields(TrainConfig)}[name]
    default = f.default.value if isinstance(f.default, Enum) else f.default
    if "action" not in kw:
        kw["default"] = default
    p.add_argument("--" + name.replace("_", "-"), dest=name, help=TrainConfig.help(name).replace("%", "%%"), **kw)


FIELDS = {  # TrainConfig fields with a flag of their own (type for argparse; None: a string)
    "model": None, "task": None, "method": None, "deep_mode": None, "n_tokens": int, "prior": None,
    "deep_prior": None, "soft_space": None, "weight_decay": float, "lr": float, "steps": int, "batch_size": int,
    "grad_accum": int, "warmup_steps": int, "schedule": None, "deep_lr": None, "max_length": int,
    "precision": None, "seed": int, "n_train": int, "eval_size": int, "eval_max_length": int,
    "max_new_tokens": int, "eval_every": int, "plateau_eval_size": int, "plateau_window": int, "plateau_tol": float,
    "checkpoint_every": int, "device": None,
}


EXAMPLES = """examples:
  priorlib train --task squad --prior vocab-sample --lr 1e-2 --steps 150 --out runs/demo
  priorlib train --task squad --prior fitted-gaussian --lr 1e-2 --schedule constant --stop-at-plateau \\
      --steps 800 --eval-every 25 --out runs/to-plateau        # stop once the held-out loss is flat
  priorlib train --task math --method deep --prior fitted-gaussian --deep-prior interpolation \\
      --deep-prior-param alpha=uniform --out runs/math-interp
  priorlib train ... --out runs/demo --resume                  # continue a killed run exactly
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .regularisers import PENALTIES, REGULARISERS
    p.epilog, p.formatter_class = EXAMPLES, argparse.RawDescriptionHelpFormatter
    for name, kind in FIELDS.items():
        _field(p, name, **({"type": kind} if kind else {}))
    p.add_argument("--deep-layers", default="-3,-2,-1", help="comma-separated layer indices (negative: from "
                   "the top; default: -3,-2,-1)")
    p.add_argument("--no-token-prompt", action="store_true", help="deep prompts only, no token-level soft prompt")
    p.add_argument("--prior-param", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="one of the prior's parameters (repeatable)")
    p.add_argument("--deep-prior-param", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="one of the deep prior's parameters (repeatable)")
    for name in PENALTIES:  # --reg-prior-l2, --reg-mahalanobis, ... (weight decay has its own flag above)
        _field(p, REGULARISERS[name].field, type=float, metavar="W")
    _field(p, "stop_at_plateau", action="store_true")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="run the frozen layers in eager mode (default: compiled; see TrainConfig.help('compile'))")
    p.add_argument("--out", required=True, help="run folder (must be new, or hold this run with --resume)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its newest valid checkpoint (--out must hold one)")
    p.add_argument("--resume-or-start", action="store_true",
                   help="continue the run in --out if there is one, else start it there")
    p.add_argument("--wait", action="store_true",
                   help="if another process is writing to --out, wait for it instead of failing at once")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(a) -> "TrainConfig":
    from .config import TrainConfig
    from .regularisers import PENALTIES, REGULARISERS
    try:
        layers = tuple(int(x) for x in a.deep_layers.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--deep-layers must be comma-separated integers, got {a.deep_layers!r}") from None
    fields = {name: getattr(a, name) for name in FIELDS}
    fields.update({REGULARISERS[n].field: getattr(a, REGULARISERS[n].field) for n in PENALTIES})
    return TrainConfig(**fields, deep_layers=layers, token_prompt=not a.no_token_prompt,
                       prior_params=dict(a.prior_param), deep_prior_params=dict(a.deep_prior_param) or None,
                       stop_at_plateau=a.stop_at_plateau, compile=a.compile)


def run(a) -> int:
    from .data import check_data
    check_data(a.task)  # no data anywhere: one line at once, before torch or a model loads
    config = config_from_args(a)  # ValueError -> one line, before anything loads
    from .trainer import Trainer
    if a.resume and a.resume_or_start:
        raise ValueError("give --resume or --resume-or-start, not both")
    resume = "auto" if a.resume_or_start else bool(a.resume)
    trainer = Trainer(config, a.out, resume=resume, progress=not a.quiet, wait=a.wait)
    m = trainer.fit()
    keys = [k for k in ("val_loss", "exact_match", "f1", "accuracy") if k in (m["final"] or {})]
    print(json.dumps({"out": a.out, "initial": {k: m["initial"].get(k) for k in keys},
                      "final": {k: m["final"].get(k) for k in keys},
                      "median_s_per_step": m["median_s_per_step"]}, indent=1))
    return 0
