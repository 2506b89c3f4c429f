"""The trainer: AdamW on the prompt tensors of a frozen LM, with callbacks and exact resume.

    trainer = Trainer(TrainConfig(task="squad", prior="vocab-sample", steps=200), "runs/demo")
    metrics = trainer.fit()

A run folder holds ``config.json``, ``history.jsonl`` (step, loss, lr, seconds, tokens),
``evals.jsonl`` (validation loss and generation scores), ``checkpoints/step_*.safetensors``
(step 0 is the prior sample) and, once finished, ``metrics.json``. Kill the process at any point
and call ``fit()`` again with ``resume=True``: it continues from the newest *valid* checkpoint (an
unreadable or inconsistent one is moved aside as ``*.invalid``, and said so on stderr) and ends with
the same prompts (bitwise in fp32 on CPU) as a run that never stopped, because the data order and the
learning rate are pure functions of the step and the optimizer state is restored.

Safety: every input is checked before the model loads (config, device, ``out_dir``, the examples);
nothing is written to ``out_dir`` until the run's prompts, data and optimizer are built; ``fit()``
holds the folder's exclusive lock (:mod:`priorlib.locks`) while it writes; a non-finite loss, gradient
or prompt stops training (:class:`TrainingDiverged`) with the last good checkpoint kept; the logs are
strict JSON.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import arch
from .batching import BucketSampler, bos_ids, collate, encode
from .checkpoint import (atomic_write_text, list_checkpoints, load_checkpoint, read_jsonl, restore_optimizer,
                         save_checkpoint)
from .compiled import compiled_layers, enabled as compiled_enabled
from .config import DeepLR, Precision, Schedule, TrainConfig
from .distributed import Dist
from .errors import TrainingDiverged
from .hardware import warn_if_slow_bf16
from .locks import LOCK_FILES, folder_lock
from .prompts import PromptedLM
from . import tasks


class Callback:
    """Override what you need; every hook gets the trainer."""

    def on_step(self, trainer: "Trainer", logs: dict) -> None: ...
    def on_eval(self, trainer: "Trainer", metrics: dict) -> None: ...
    def on_checkpoint(self, trainer: "Trainer", step: int, path: Path) -> None: ...


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then linear decay to 0 at ``steps`` (``schedule="linear"``)
    or ``lr`` from then on (``"constant"``)."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule is Schedule.CONSTANT:
        return config.lr
    rest = max(1, config.steps - config.warmup_steps)
    return config.lr * max(0.0, 1.0 - (step - config.warmup_steps) / rest)


def plateau_reached(losses: list[float], window: int, tol: float) -> bool:
    """The plateau rule on validation losses at successive evaluations (step 0 first): the best of the
    last ``window`` improves on the best before them by less than ``tol`` of it. False until there are
    ``window + 1`` evaluations.

        plateau_reached([2.0, 1.5, 1.2, 1.19, 1.195, 1.19], window=3, tol=0.01)   # True: 0.8% better
    """
    if window < 1 or len(losses) <= window:
        return False
    before, recent = min(losses[:-window]), min(losses[-window:])
    return (before - recent) < tol * abs(before)


class Trainer:
    """``resume``: ``False`` (a new run; a finished one is reused), ``True`` (continue the run in
    ``out_dir``, which must hold one) or ``"auto"`` (resume or start). ``wait``: when another process
    holds the folder's lock, fail at once (``False``), wait for it (``True``) or wait that many seconds."""

    def __init__(self, config: TrainConfig, out_dir: str | Path, *, model=None, tokenizer=None,
                 callbacks=(), resume: bool | str = False, progress: bool = True, train_examples=None,
                 eval_examples=None, initial=None, wait: bool | float = False):
        if resume not in (False, True, "auto"):
            raise ValueError(f"resume must be False, True or 'auto', got {resume!r}")
        self.config = config
        self.out = Path(out_dir)
        self.callbacks = list(callbacks)
        self.progress = progress
        self.resume = resume
        self.wait = wait
        self.fallbacks: list[str] = []  # checkpoints found invalid (and moved aside) on resume
        from .models import check_device
        check_device(config.device)  # a bogus device, or cuda on a machine without one: one line, now
        self.dist = Dist.from_env(config.device)
        if self.dist.world > 1 and torch.device(config.device).type == "cuda":
            config.device = f"cuda:{self.dist.local_rank}"
        check_out_path(self.out)
        self._check_out_dir()
        # the data before the model: a bad data file fails in a second, not after the model has loaded
        self.train_examples = train_examples if train_examples is not None else \
            tasks.examples(config.task, "train", n=config.n_train, math_per_module=config.math_per_module)
        # the held-out pool; the set is its first eval_size prompts that fit whole (chosen once the tokenizer is here)
        self._eval_pool = list(eval_examples) if eval_examples is not None else \
            tasks.held_out_pool(config.task, config.eval_size, math_per_module=config.math_per_module)
        if len(self.train_examples) < config.batch_size:
            raise ValueError(f"{len(self.train_examples)} training examples cannot fill one batch of {config.batch_size}")
        if not self._eval_pool:
            raise ValueError("no validation examples: the run could not be evaluated")
        warn_if_slow_bf16(config.precision, config.device)
        if model is None:
            dtype = torch.bfloat16 if config.precision is Precision.BF16 else torch.float32
            from .models import load_model
            model, tokenizer = load_model(config.model, dtype=dtype, device=config.device,
                                          attn_implementation=config.attn_implementation)
        self.model, self.tok = model, tokenizer
        self.held_out = tasks.held_out_set(tokenizer, self._eval_pool, config.eval_size,
                                           config.eval_max_length - config.max_new_tokens)
        self.eval_examples = self.held_out.examples
        self.layers = arch.resolve_layers(model, config.deep_layers)  # a bad layer index fails before any compute
        if config.soft_space != "tokens" and (config.method.value == "soft" or config.token_prompt):
            from .hooks import parse_point
            parse_point(model, config.soft_space)  # layers.99.resid_post on a 4-layer model: fails here
        self._initial = initial

    # ------------------------------------------------------------------ run folder
    def _check_out_dir(self):
        cfg_path = self.out / "config.json"
        if cfg_path.exists():
            old = read_run_config(cfg_path)
            if old["identity"] != json.loads(json.dumps(self.config.identity())):
                raise FileExistsError(f"{self.out} holds another run (its config.json differs); choose another --out")
            if not self.resume and list_checkpoints(self.out) and not (self.out / "metrics.json").exists():
                raise FileExistsError(f"{self.out} holds an unfinished run of this config; pass --resume to continue it")
        elif self.out.is_dir() and any(p.name not in LOCK_FILES for p in self.out.iterdir()):
            raise FileExistsError(f"{self.out} is not empty and holds no priorlib run; choose another --out")
        elif self.resume is True:
            raise FileNotFoundError(f"{self.out} holds no run to resume (a typo in --out?); "
                                    f"pass --resume-or-start to start one there")

    def expected_prompts(self) -> dict[str, tuple[int, int]]:
        """The prompt tensors this run trains, ``{name: (n_tokens, d)}`` (what a checkpoint must hold)."""
        cfg, d = self.config, arch.d_model(self.model)
        out = {}
        if cfg.method.value == "soft" or cfg.token_prompt:
            out["soft"] = (cfg.n_tokens, d)
        if cfg.method.value == "deep":
            out.update({f"deep.{k}": (cfg.n_tokens, d) for k in self.layers})
        return out

    def _resume_state(self) -> dict | None:
        """The newest valid checkpoint (``load_checkpoint``'s dict) or ``None`` if there is none at all.
        Invalid ones are moved aside (``step_*.safetensors.invalid``) with a line on stderr; if every
        checkpoint is invalid, the newest one's problem is the error."""
        ckpts = list_checkpoints(self.out)
        errors = []
        for _, path in reversed(ckpts):
            try:
                state = load_checkpoint(path, expect=self.expected_prompts(), max_step=self.config.steps)
            except ValueError as err:
                errors.append((path, err))
                continue
            for bad, err in errors:
                aside = bad.with_name(bad.name + ".invalid")
                if self.dist.main:
                    os.replace(bad, aside)
                msg = f"priorlib: {err}; moved it aside to {aside.name}; resuming from {path.name}"
                self.fallbacks.append(msg)
                print(msg, file=sys.stderr)
            return state
        if errors:
            raise ValueError(f"no usable checkpoint in {self.out / 'checkpoints'}: {errors[0][1]}")
        return None

    @property
    def finished(self) -> bool:
        return (self.out / "metrics.json").exists()

    def autocast(self):
        if self.config.precision is Precision.BF16:
            return torch.autocast(torch.device(self.config.device).type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def compiled(self) -> bool:
        """Whether the frozen layers run compiled (``config.compile``, unless ``PRIORLIB_COMPILE=0``)."""
        return compiled_enabled(self.config.compile)

    @contextlib.contextmanager
    def _scoring_context(self):
        """Validation passes (no gradient): autocast, and every layer compiled when training is."""
        with self.autocast(), compiled_layers(self.model, on=self.compiled):
            yield

    # ------------------------------------------------------------------ main loop
    def fit(self) -> dict:
        """Train to ``config.steps`` (or return the finished run's metrics), holding the folder's lock."""
        lock = folder_lock(self.out, wait=self.wait) if self.dist.main else contextlib.nullcontext()
        with lock:
            return self._fit()

    def _fit(self) -> dict:
        if self.dist.main:
            self._check_out_dir()  # again, under the lock: another writer may have been here meanwhile
        if self.finished:
            return read_json_file(self.out / "metrics.json")
        cfg = self.config
        self.dist.barrier()  # every rank has checked the folder before rank 0 writes to it
        tok = self.tok
        encoded = [encode(tok, ex, cfg.max_length) for ex in self.train_examples]  # cut around the answer
        val_encoded = self.held_out.encoded  # whole prompts: evaluation never sees where the answer is
        sampler = BucketSampler([e.length for e in encoded], cfg.batch_size, cfg.seed)

        state = self._resume_state()
        if state is not None:
            soft0, deep0 = self._split(state["prompts"])
            info = state["extra"].get("init", {})
        else:
            soft0, deep0, info = self._initial if self._initial is not None else self._draw_initial()
            for name, t in {"soft": soft0, **{f"deep.{k}": v for k, v in (deep0 or {}).items()}}.items():
                if t is not None and not torch.isfinite(t).all():
                    raise ValueError(f"prior {cfg.prior!r} drew a non-finite initial {name} prompt; check its params")
        self.lm = PromptedLM.build(self.model, method=cfg.method.value, n_tokens=cfg.n_tokens,
                                   deep_layers=cfg.deep_layers, deep_mode=cfg.deep_mode,
                                   token_prompt=cfg.token_prompt, soft_init=soft0, deep_init=deep0,
                                   bos_ids=bos_ids(tok)).to(cfg.device)
        prompts = self.lm.prompt_tensors()
        if "deep_lr_scale" not in info:
            info = {**info, "deep_lr_scale": self._deep_lr_scales(encoded, sampler)}
        scales = {name: (info["deep_lr_scale"][name.split(".")[1]] if name.startswith("deep.") else 1.0)
                  for name in prompts}
        opt = torch.optim.AdamW([{"params": [t], "scale": scales[name]} for name, t in prompts.items()],
                                lr=cfg.lr, weight_decay=cfg.weight_decay)
        # everything is built and checked: only now is the folder written
        start = 0
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out / "config.json",
                              json.dumps({"config": cfg.to_dict(), "identity": cfg.identity(), "key": cfg.key()},
                                         indent=1, allow_nan=False))
        if state is not None:
            start = state["step"]
            restore_optimizer(opt, prompts, state["optim"])
            torch.set_rng_state(state["rng"])
            if self.dist.main:
                self._truncate_logs(start)
        elif self.dist.main:
            self._reset_logs()
            path = save_checkpoint(self.out, 0, prompts, None, extra={"init": info})
            self._emit("on_checkpoint", 0, path)
        self.dist.barrier()
        missing0 = self.dist.main and not any(e["step"] == 0 for e in self._rows("evals.jsonl"))
        if start == 0 and self.dist.sum(int(missing0)) > 0:  # rank 0 decides, every rank follows
            self._evaluate(0, val_encoded, generate=cfg.eval_generate and cfg.generate_initial)  # the untrained prompt's
        # the plateau rule's inputs, the validation losses so far; every rank reads them (a pure function of the log)
        self._val_losses = [e["plateau_loss"] for e in self._rows("evals.jsonl") if e["step"] <= start]
        stopped_at = start if (start and cfg.stop_at_plateau and self._plateaued()) else None

        frozen_below = self.lm.lower_layers_frozen_below()
        reg = self._regulariser()
        self._frozen_cache: dict[int, torch.Tensor] = {}
        bar = tqdm(range(start, cfg.steps if stopped_at is None else start), desc=f"train {cfg.method.value}/{cfg.prior}",
                   initial=start, total=cfg.steps, disable=not (self.progress and self.dist.main))
        t_run = time.perf_counter()
        final = None
        for step in bar:
            t0 = time.perf_counter()
            lr = lr_at(step, cfg)
            for group in opt.param_groups:
                group["lr"] = lr * group["scale"]
            opt.zero_grad(set_to_none=True)
            micro = [collate([encoded[i] for i in self.dist.shard(sampler.batch(step * cfg.grad_accum + j))],
                             tok.pad_token_id) for j in range(cfg.grad_accum)]
            n_answer = self.dist.sum(sum(int((lab != -100).sum()) for _, lab in micro))  # over all ranks
            loss_sum = 0.0
            for j, (ids, labels) in enumerate(micro):
                with self.autocast(), compiled_layers(self.model, start=frozen_below, on=self.compiled):
                    if frozen_below:  # deep prompts only: the lower layers never change, reuse them
                        idx = self.dist.shard(sampler.batch(step * cfg.grad_accum + j))
                        h = self.lm.hidden_from_states(self._frozen(idx, ids, encoded))
                        loss, _ = self.lm.loss_from_hidden(h, labels.to(cfg.device))
                    else:
                        loss, _ = self.lm.answer_loss(ids.to(cfg.device), labels.to(cfg.device))
                (loss / n_answer).backward()
                loss_sum += float(loss.detach())
            loss_sum = self.dist.sum(loss_sum)
            self.dist.sum_grads(prompts.values())
            reg_terms = {}
            if reg is not None:  # once per step, on the summed gradient (identical on every rank)
                penalty, reg_terms = reg.penalty(prompts["soft"])
                penalty.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(list(prompts.values()), cfg.max_grad_norm))
            done = step + 1
            if not (math.isfinite(loss_sum) and math.isfinite(grad_norm)):  # before the step: prompts stay good
                self._diverged(done, f"the loss is {loss_sum / n_answer} and the gradient norm {grad_norm}")
            try:
                opt.step()
            except RuntimeError as err:  # an lr near float32's limit: AdamW's step size overflows
                if "overflow" not in str(err):
                    raise
                self._diverged(done, f"the optimizer step overflowed (lr {lr:g})")
            if not all(bool(torch.isfinite(t).all()) for t in prompts.values()):
                self._diverged(done, "the update made the prompt non-finite")
            logs = {"step": done, "loss": loss_sum / n_answer, "lr": lr, "grad_norm": grad_norm,
                    "seconds": time.perf_counter() - t0, "tokens": int(sum(ids.numel() for ids, _ in micro)),
                    **{f"reg_{k}": v for k, v in reg_terms.items()}}
            if self.dist.main:
                with open(self.out / "history.jsonl", "a") as f:
                    f.write(json.dumps(logs, allow_nan=False) + "\n")
            bar.set_postfix(loss=f"{logs['loss']:.3f}")
            self._emit("on_step", logs)
            last = done == cfg.steps
            if done % cfg.eval_every == 0 and not last:
                self._val_losses.append(self._val_loss(done, val_encoded))
                if cfg.stop_at_plateau and self._plateaued():  # this evaluation becomes the final one
                    final = self._evaluate(done, val_encoded, generate=cfg.eval_generate)
                    last = True
                elif self.dist.main:
                    self._log_eval({"step": done, **self._scored})
                else:
                    self.dist.barrier()
            if (done % cfg.checkpoint_every == 0 or last) and self.dist.main:
                path = save_checkpoint(self.out, done, prompts, opt, extra={"init": info})
                self._emit("on_checkpoint", done, path)
            if last:
                stopped_at = done
                break
        if stopped_at is None:  # resumed from the cap's checkpoint
            stopped_at = cfg.steps
        if final is None and stopped_at == start and self.dist.main:  # killed after the final evaluation was logged
            final = next((e for e in self._rows("evals.jsonl") if e["step"] == stopped_at and e["step"] > 0), None)
        if final is None:
            final = self._evaluate(stopped_at, val_encoded, generate=cfg.eval_generate)
        seconds = time.perf_counter() - t_run
        if not self.dist.main:
            self.dist.barrier()
            return {}
        metrics = self._finish(final, seconds, stopped_at, info.get("deep_lr_scale") or {})
        self.dist.barrier()
        return metrics

    # ------------------------------------------------------------------ pieces
    def _regulariser(self):
        from .regularisers import Penalty
        weights = self.config.regularisers()
        if not weights.active:
            return None
        step0 = load_checkpoint(list_checkpoints(self.out)[0][1], expect=self.expected_prompts(),
                                max_step=0)["prompts"]["soft"]  # the prior sample
        ref = None
        if weights.mahalanobis or weights.mahalanobis_hinge or weights.nearest_token:
            from .priors import Reference
            ref = Reference.from_embeddings(self.model, self.tok)
        return Penalty(weights, step0, ref)

    def _frozen(self, idx: list[int], ids: torch.Tensor, encoded) -> torch.Tensor:
        """States entering the lowest deep layer for the batch ``idx``, ``[B, T, d]``, computed once per
        example (the first time it is drawn) and kept; padding rows are zeros, which only padding sees."""
        missing = [b for b, i in enumerate(idx) if i not in self._frozen_cache]
        if missing:
            with self.autocast():
                states = self.lm.frozen_states(ids[missing].to(self.config.device))
            for b, s in zip(missing, states):
                self._frozen_cache[idx[b]] = s[: encoded[idx[b]].length].detach()
        T = ids.shape[1]
        first = self._frozen_cache[idx[0]]
        out = torch.zeros(len(idx), T, first.shape[-1], dtype=first.dtype, device=first.device)
        for b, i in enumerate(idx):
            s = self._frozen_cache[i]
            out[b, : len(s)] = s
        return out

    def _draw_initial(self):
        from .initial import initial_prompts
        return initial_prompts(self.config, self.model, self.tok)

    def _split(self, tensors: dict) -> tuple:
        soft = tensors.get("soft")
        deep = {int(k.split(".")[1]): v for k, v in tensors.items() if k.startswith("deep.")} or None
        return soft, deep

    def _emit(self, name, *args):
        for cb in self.callbacks:
            getattr(cb, name)(self, *args)

    def _evaluate(self, step: int, val_encoded, generate: bool) -> dict:
        """A full evaluation (step 0 and the last): validation loss and token accuracy on the whole
        held-out set, the learning curve's ``plateau_loss``, greedy-decoding scores; logged on rank 0,
        the other ranks wait. With ``fused_eval`` the loss and
        the decoding share one forward over the prompts (``tasks.fused_scores``); ``plateau_loss`` is
        still the curve's own pass, so the plateau rule reads one kind of number."""
        if not self.dist.main:
            self.dist.barrier()
            return {}
        cfg = self.config
        exs = self.eval_examples
        t0 = time.perf_counter()
        if cfg.fused_eval:
            m = {"step": step, **self._scores(step, val_encoded, full=False)}  # the curve (reused when computed)
            m["seconds"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            scores, preds = tasks.fused_scores(self.lm, self.tok, exs, cfg.task, val_encoded,
                                               max_new_tokens=cfg.max_new_tokens, autocast=self.autocast,
                                               generate=generate, progress=self.progress)
            bad = {k: v for k, v in scores.items() if not math.isfinite(v)}
            if bad:
                self._diverged(step, f"the validation scores are not finite ({bad})")
            m.update(scores)
            m["generation_seconds"] = time.perf_counter() - t0  # the one pass: the cost model's decoding phase
        else:
            m = {"step": step, **self._scores(step, val_encoded, full=True)}
            m["seconds"] = time.perf_counter() - t0  # the cost model's phases (priorlib.costs)
            preds = None
            if generate:
                t0 = time.perf_counter()
                scores, preds = tasks.generation_scores(self.lm, self.tok, exs, cfg.task,
                                                        prompts=[e.prompt_ids for e in val_encoded],
                                                        max_new_tokens=cfg.max_new_tokens,
                                                        autocast=self.autocast, progress=self.progress)
                m.update(scores)
                m["generation_seconds"] = time.perf_counter() - t0
        if generate:
            m["examples"] = [{"answers": list(ex.answers)[:3], "prediction": p}
                             for ex, p in list(zip(exs, preds))[:5]]
        return self._log_eval(m)

    def _scores(self, step: int, val_encoded, full: bool) -> dict:
        cfg, curve = self.config, min(self.config.plateau_eval_size, len(val_encoded))
        args = (self.lm, val_encoded, cfg.batch_size, self.tok.pad_token_id, self._scoring_context)
        if full:  # the curve's head, when this step's periodic evaluation computed it, is not computed again
            head = self._head[1] if getattr(self, "_head", (None,))[0] == step else None
            m = tasks.validation_scores(*args, curve=curve, head=head)
        else:
            if getattr(self, "_head", (None,))[0] != step:  # a plateau stop's final evaluation reuses its curve
                self._head = (step, tasks.validation_totals(self.lm, val_encoded[:curve], *args[2:]))
            m = {"plateau_loss": self._head[1][0] / self._head[1][1]}
        bad = {k: v for k, v in m.items() if isinstance(v, float) and not math.isfinite(v)}
        if bad:
            self._diverged(step, f"the validation scores are not finite ({bad})")
        return m

    def _val_loss(self, step: int, val_encoded) -> float:
        """A periodic evaluation's ``plateau_loss``, the same on every rank (rank 0 computes, all get it)."""
        t0 = time.perf_counter()
        self._scored = self._scores(step, val_encoded, full=False) if self.dist.main else {}
        if self._scored:
            self._scored["seconds"] = time.perf_counter() - t0
        return self.dist.sum(self._scored.get("plateau_loss", 0.0))  # only rank 0's is non-zero

    def _plateaued(self) -> bool:
        return plateau_reached(self._val_losses, self.config.plateau_window, self.config.plateau_tol)

    def _deep_lr_scales(self, encoded, sampler) -> dict[str, float]:
        """``{layer: scale}`` for the deep blocks' learning rate: with ``deep_lr="activation-scale"`` the
        median per-token RMS of the states entering the layer (the first training batch, every position
        but the first, whose massive activations would dominate) over the median RMS of the token
        embeddings' rows, so a block travels the same share of its space per step as the soft prompt."""
        cfg = self.config
        if cfg.method.value != "deep":
            return {}
        if cfg.deep_lr is DeepLR.SAME:
            return {str(k): 1.0 for k in self.layers}
        from .hooks import text_activations
        ids, _ = collate([encoded[i] for i in sampler.batch(0)], self.tok.pad_token_id)
        lengths = [encoded[i].length for i in sampler.batch(0)]
        dtype = torch.bfloat16 if cfg.precision is Precision.BF16 else None
        states = text_activations(self.model, self.tok, ids.to(cfg.device),
                                  [f"layers.{k}.resid_pre" for k in self.layers], dtype)
        states = {int(name.split(".")[1]): h for name, h in states.items()}
        emb = self.model.get_input_embeddings().weight.float()
        emb_rms = float(emb.pow(2).mean(-1).sqrt().median())
        out = {}
        for k, h in states.items():  # [B, T, d]
            rms = torch.cat([h[b, 1:n].float().pow(2).mean(-1).sqrt() for b, n in enumerate(lengths)])
            out[str(k)] = float(rms.median()) / emb_rms
        return out

    def _log_eval(self, m: dict) -> dict:
        with open(self.out / "evals.jsonl", "a") as f:
            f.write(json.dumps(m, allow_nan=False) + "\n")
        self._emit("on_eval", m)
        self.dist.barrier()
        return m

    def _diverged(self, step: int, what: str):
        kept = list_checkpoints(self.out)
        last = f"the last good checkpoint, {kept[-1][1].name}, is kept" if kept else "no checkpoint was written"
        raise TrainingDiverged(f"{self.out}: training diverged at step {step}: {what}; stopped ({last}); "
                               f"lower --lr or check the prior's params")

    def _rows(self, name: str) -> list[dict]:
        return read_jsonl(self.out / name, torn_tail=True)

    def _reset_logs(self):
        for name in ("history.jsonl", "evals.jsonl"):
            (self.out / name).unlink(missing_ok=True)

    def _truncate_logs(self, step: int):
        """Drop log rows written after the checkpoint we resume from: they are about to be redone."""
        for name in ("history.jsonl", "evals.jsonl"):
            path = self.out / name
            if path.exists():
                keep = [r for r in read_jsonl(path, torn_tail=True) if r["step"] <= step]  # a torn last row goes too
                atomic_write_text(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in keep))

    def _finish(self, final: dict, seconds: float, stopped_at: int, deep_lr_scale: dict) -> dict:
        cfg = self.config
        evals, hist = self._rows("evals.jsonl"), self._rows("history.jsonl")
        initial = next((e for e in evals if e["step"] == 0), None)
        step_s = sorted(h["seconds"] for h in hist)
        losses = [e["plateau_loss"] for e in evals]
        # under a decaying lr every curve flattens: the rule cannot tell a plateau from the schedule
        plateaued = plateau_reached(losses, cfg.plateau_window, cfg.plateau_tol) \
            if cfg.schedule is Schedule.CONSTANT else None
        metrics = {"initial": initial, "final": final, "steps": stopped_at, "step_cap": cfg.steps,
                   "plateaued": plateaued, "stopped_by": "plateau" if stopped_at < cfg.steps else "cap",
                   "evaluations": len(losses), "deep_lr_scale": deep_lr_scale,
                   "held_out": {"n": len(self.eval_examples), "scanned": self.held_out.scanned,
                                "left_out": self.held_out.left_out,
                                "max_prompt_tokens": cfg.eval_max_length - cfg.max_new_tokens},
                   "median_s_per_step": step_s[len(step_s) // 2] if step_s else None,
                   "train_seconds_this_process": seconds, "compiled": self.compiled, "key": self.config.key()}
        atomic_write_text(self.out / "metrics.json", json.dumps(metrics, indent=1, allow_nan=False))
        return metrics


def read_json_file(path: Path, what: str = "JSON file") -> dict:
    """A JSON object from ``path``; a one-line ``ValueError`` naming the file if it is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not valid UTF-8 at byte {err.start}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a valid {what} (line {err.lineno} column {err.colno}: {err.msg}); "
                         f"restore or delete it") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a valid {what} (expected an object, got {type(data).__name__})")
    return data


def read_run_config(path: Path) -> dict:
    data = read_json_file(path, "run config")
    if not isinstance(data.get("identity"), dict):
        raise ValueError(f"{path}: not a valid run config (no 'identity' object); restore or delete it")
    return data


def check_out_path(out: Path) -> None:
    """Fail now, in one line naming the path, if ``out`` cannot become a run folder: it is a file, lies
    under a file, or its nearest existing folder cannot be written (probed with a temporary folder,
    removed at once)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a folder")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise NotADirectoryError(f"--out {out} lies under {probe}, which is a file")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".priorlib-probe-", dir=probe))
    except OSError as err:
        raise PermissionError(f"--out {out}: cannot write to {probe} ({err.strerror})") from None

