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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import TrainConfig


def _kv(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def _defaults() -> dict:
    """TrainConfig's defaults, so the command line and the Python API can never disagree."""
    import dataclasses
    from .config import TrainConfig
    return {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--task", default="squad", help="squad | math")
    p.add_argument("--method", default="soft", help="soft | deep")
    p.add_argument("--deep-mode", default="cut", help="cut (the paper's) | carry")
    p.add_argument("--deep-layers", default="-3,-2,-1", help="comma-separated layer indices (negative: from the top)")
    p.add_argument("--no-token-prompt", action="store_true", help="deep prompts only, no token-level soft prompt")
    p.add_argument("--n-tokens", type=int, default=20)
    p.add_argument("--prior", default="isotropic")
    p.add_argument("--prior-param", type=_kv, action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--deep-prior", default=None)
    p.add_argument("--deep-prior-param", type=_kv, action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--soft-space", default="tokens", help="tokens | a hook point such as layers.0.resid_post")
    p.add_argument("--weight-decay", type=float, default=0.0)
    from .regularisers import PENALTIES, REGULARISERS
    for name in PENALTIES:  # --reg-prior-l2, --reg-mahalanobis, ... (weight decay has its own flag above)
        r = REGULARISERS[name]
        p.add_argument("--" + r.field.replace("_", "-"), dest=r.field, type=float, default=0.0, metavar="W",
                       help=f"penalty weight (default 0: off): {r.title}")
    d = _defaults()
    p.add_argument("--lr", type=float, default=d["lr"], help="peak learning rate (default %(default)s)")
    p.add_argument("--steps", type=int, default=d["steps"],
                   help="optimizer steps (default %(default)s; the cap with --stop-at-plateau)")
    p.add_argument("--batch-size", type=int, default=d["batch_size"], help="default %(default)s")
    p.add_argument("--grad-accum", type=int, default=d["grad_accum"], help="default %(default)s")
    p.add_argument("--warmup-steps", type=int, default=d["warmup_steps"], help="default %(default)s")
    p.add_argument("--schedule", default=d["schedule"].value,
                   help="linear (decay to 0 at --steps) | constant (after warm-up); default %(default)s")
    p.add_argument("--deep-lr", default=d["deep_lr"].value,
                   help="activation-scale (each deep block's lr times its layer's activation scale over the "
                        "embeddings') | same; default %(default)s")
    p.add_argument("--max-length", type=int, default=d["max_length"],
                   help="training sequence length; a long context is cut around its answer (default %(default)s)")
    p.add_argument("--precision", default=d["precision"].value, help="bf16 | fp32 (default %(default)s)")
    p.add_argument("--seed", type=int, default=d["seed"])
    p.add_argument("--n-train", type=int, default=d["n_train"], help="cap on training examples (default: all)")
    p.add_argument("--eval-size", type=int, default=d["eval_size"],
                   help="held-out questions, fixed across runs (default %(default)s)")
    p.add_argument("--eval-max-length", type=int, default=d["eval_max_length"],
                   help="held-out prompts longer than this minus --max-new-tokens are left out, never cut "
                        "(default %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=d["max_new_tokens"], help="default %(default)s")
    p.add_argument("--eval-every", type=int, default=d["eval_every"],
                   help="steps between validation-loss evaluations (default %(default)s)")
    p.add_argument("--plateau-window", type=int, default=d["plateau_window"],
                   help="evaluations the plateau rule looks back over (default %(default)s)")
    p.add_argument("--plateau-tol", type=float, default=d["plateau_tol"],
                   help="plateaued when the last window improves the best loss by less than this share "
                        "(default %(default)s)")
    p.add_argument("--stop-at-plateau", action="store_true",
                   help="stop as soon as the plateau rule holds (needs --schedule constant)")
    p.add_argument("--checkpoint-every", type=int, default=d["checkpoint_every"], help="default %(default)s")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="run folder (must be new, or hold this run with --resume)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its newest valid checkpoint (--out must hold one)")
    p.add_argument("--resume-or-start", action="store_true",
                   help="continue the run in --out if there is one, else start it there")
    p.add_argument("--wait", action="store_true",
                   help="if another process is writing to --out, wait for it instead of failing at once")
    p.add_argument("--quiet", action="store_true")


def config_from_args(a) -> "TrainConfig":
    from .config import TrainConfig
    from .regularisers import PENALTIES, REGULARISERS
    try:
        layers = tuple(int(x) for x in a.deep_layers.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--deep-layers must be comma-separated integers, got {a.deep_layers!r}") from None
    return TrainConfig(model=a.model, task=a.task, method=a.method, deep_mode=a.deep_mode, deep_layers=layers,
                       token_prompt=not a.no_token_prompt, n_tokens=a.n_tokens, prior=a.prior,
                       prior_params=dict(a.prior_param), deep_prior=a.deep_prior,
                       deep_prior_params=dict(a.deep_prior_param) or None, soft_space=a.soft_space, lr=a.lr,
                       steps=a.steps, batch_size=a.batch_size, grad_accum=a.grad_accum, warmup_steps=a.warmup_steps,
                       max_length=a.max_length, precision=a.precision, seed=a.seed, n_train=a.n_train,
                       eval_size=a.eval_size, eval_every=a.eval_every, checkpoint_every=a.checkpoint_every,
                       schedule=a.schedule, deep_lr=a.deep_lr, eval_max_length=a.eval_max_length,
                       max_new_tokens=a.max_new_tokens, plateau_window=a.plateau_window, plateau_tol=a.plateau_tol,
                       stop_at_plateau=a.stop_at_plateau,
                       device=a.device, weight_decay=a.weight_decay,
                       **{REGULARISERS[n].field: getattr(a, REGULARISERS[n].field) for n in PENALTIES})


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
