"""Tasks: which examples a run trains and evaluates on, and how its answers are scored."""
from __future__ import annotations

import random

import torch
from tqdm.auto import tqdm

from .batching import collate, prompt_ids
from .config import Task
from .metrics.qa import math_correct, squad_scores

# Held-out sets are fixed for every run (data seed 0), whatever the training seed: runs compare.
DATA_SEED = 0


def examples(task: Task, split: str, *, n: int | None = None, math_per_module: int = 2000):
    from . import data
    if Task(task) is Task.SQUAD:
        out = data.load_squad(split, seed=DATA_SEED)
    else:
        per = math_per_module if split == "train" else max(1, (n or 60) // len(data.MATH_MODULES) + 1)
        out = data.load_math(split, n_per_module=per, seed=DATA_SEED)
    if split != "train":
        out = list(out)
        random.Random(DATA_SEED).shuffle(out)  # a mixed, fixed held-out subset
    if n is not None:
        if n > len(out):
            raise ValueError(f"asked for {n} {task} {split} examples, only {len(out)} exist")
        out = out[:n]
    return out


def domain_texts(name: str, n: int, seed: int = DATA_SEED) -> list[str]:
    """Texts of a domain for activation references: ``web`` (the C4 stand-in), ``squad``, ``math``."""
    from . import data
    if name == "web":
        return data.load_web(n, seed=seed)
    if name == "squad":
        ex = data.load_squad("train", seed=DATA_SEED)
    elif name == "math":
        ex = data.load_math("train", n_per_module=max(1, n // len(data.MATH_MODULES) + 1), seed=DATA_SEED)
    else:
        raise ValueError(f"unknown domain {name!r}; use web, squad or math")
    ex = list(ex)
    random.Random(seed).shuffle(ex)
    if n > len(ex):
        raise ValueError(f"asked for {n} {name} texts, only {len(ex)} exist")
    return [e.prompt + e.target for e in ex[:n]]


@torch.no_grad()
def validation_scores(lm, encoded, batch_size: int, pad_id: int, autocast) -> dict[str, float]:
    """Over the fixed held-out set ``encoded``: the token-weighted mean answer loss (``val_loss``, nats)
    and the share of answer tokens the prompted model predicts greedily given the gold tokens before
    them (``val_token_accuracy``, percent; a finer signal than exact match where few answers are right)."""
    total, count, correct = 0.0, 0, 0
    order = sorted(range(len(encoded)), key=lambda i: encoded[i].length)
    dev = next(lm.parameters()).device
    for s in range(0, len(order), batch_size):
        ids, labels = collate([encoded[i] for i in order[s: s + batch_size]], pad_id)
        with autocast():
            loss, n, ok = lm.answer_scores(ids.to(dev), labels.to(dev))
        total += loss
        count += n
        correct += ok
    return {"val_loss": total / count, "val_token_accuracy": 100.0 * correct / count}



@torch.no_grad()
def generation_scores(lm, tok, exs, task: Task, *, max_length: int, max_new_tokens: int, autocast,
                      progress: bool = True, batch_size: int = 16) -> tuple[dict, list[str]]:
    """Greedy answers for ``exs`` (batched, length-sorted): SQuAD EM/F1/precision/recall or MATH
    accuracy, each in percent."""
    dev = next(lm.parameters()).device
    prompts = [prompt_ids(tok, ex, max_length - max_new_tokens) for ex in exs]
    order = sorted(range(len(exs)), key=lambda i: len(prompts[i]))
    preds: list[str] = [""] * len(exs)
    for s in tqdm(range(0, len(order), batch_size), desc="generate", disable=not progress, leave=False):
        idx = order[s: s + batch_size]
        with autocast():
            outs = lm.generate_batch([torch.tensor(prompts[i], device=dev) for i in idx], max_new_tokens,
                                     stop_ids=[tok.eos_token_id], pad_id=tok.pad_token_id)
        for i, o in zip(idx, outs):
            preds[i] = tok.decode(o, skip_special_tokens=True).strip()
    if Task(task) is Task.SQUAD:
        rows = [squad_scores(p, ex.answers) for p, ex in zip(preds, exs)]
    else:
        rows = [{"accuracy": math_correct(p, ex.answers[0])} for p, ex in zip(preds, exs)]
    keys = rows[0].keys() if rows else []
    return {k: 100.0 * sum(r[k] for r in rows) / len(rows) for k in keys}, preds
