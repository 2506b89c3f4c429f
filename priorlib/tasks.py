"""Tasks: which examples a run trains and evaluates on, and how its answers are scored.

    from priorlib.data import Example
    from priorlib.tasks import TaskSpec, register_task, exact_match

    pairs = [Example("Capital of France?", " Paris", ("Paris",)), ...]
    register_task(TaskSpec("capitals", examples=lambda split, n: pairs[:n], score=exact_match))
    priorlib.train(priorlib.TrainConfig(task="capitals", ...))

``squad`` and ``math`` are built in; any other task is a :class:`TaskSpec` in :data:`TASKS`: a function
giving the examples of a split and a scorer of one greedy answer. A run may also bypass the registry's
examples entirely with ``train(..., train_examples=, eval_examples=)``.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # the registry imports no torch: a config naming a task is checked in milliseconds
    from .batching import Encoded

# Held-out sets are fixed for every run (data seed 0), whatever the training seed: runs compare.
DATA_SEED = 0


@dataclass(frozen=True)
class TaskSpec:
    """A task: ``examples(split, n)`` gives up to ``n`` :class:`~priorlib.data.Example` of ``"train"`` or
    ``"validation"`` (``n=None``: all), and ``score(prediction, example)`` scores one greedy answer as
    ``{metric: value in [0, 1]}`` (reported in percent, averaged over the held-out set). ``options``:
    config fields passed on to ``examples`` as keywords (MATH takes ``math_per_module``)."""
    name: str
    examples: Callable
    score: Callable
    description: str = ""
    options: tuple[str, ...] = ()


TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add (or replace) a task; ``TrainConfig(task=spec.name)`` then accepts it."""
    if not isinstance(spec.name, str) or not spec.name.strip():
        raise ValueError(f"a task needs a non-empty name, got {spec.name!r}")
    if not callable(spec.examples) or not callable(spec.score):
        raise ValueError(f"task {spec.name!r}: examples and score must be callables")
    TASKS[spec.name] = spec
    return spec


def check_task_name(name) -> TaskSpec:
    if name not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)} (or registered with priorlib.register_task), "
                         f"got {name!r}")
    return TASKS[name]


def exact_match(pred: str, ex) -> dict[str, float]:
    """1 when the normalised answer (SQuAD's normalisation) equals a normalised gold answer."""
    from .metrics.qa import normalize_answer
    return {"exact_match": max(float(normalize_answer(pred) == normalize_answer(g)) for g in ex.answers)}


def _squad_examples(split: str, n: int | None):
    from . import data
    return data.load_squad(split, seed=DATA_SEED)


def _math_examples(split: str, n: int | None, *, math_per_module: int = 2000):
    from . import data
    per = math_per_module if split == "train" else max(1, (n or 60) // len(data.MATH_MODULES) + 1)
    return data.load_math(split, n_per_module=per, seed=DATA_SEED)


def _squad_score(pred: str, ex) -> dict[str, float]:
    from .metrics.qa import squad_scores
    return squad_scores(pred, ex.answers)


def _math_score(pred: str, ex) -> dict[str, float]:
    from .metrics.qa import math_correct
    return {"accuracy": math_correct(pred, ex.answers[0])}


register_task(TaskSpec("squad", _squad_examples, _squad_score,
                       "SQuAD v1.1 reading comprehension (EM, F1, token precision and recall)"))
register_task(TaskSpec("math", _math_examples, _math_score,
                       "DeepMind mathematics, arithmetic modules (exact-answer accuracy)", options=("math_per_module",)))


def examples(task: str, split: str, *, n: int | None = None, math_per_module: int = 2000):
    """The first ``n`` examples of ``task``'s ``split``; held-out splits are shuffled once (data seed 0)."""
    spec = check_task_name(task)
    options = {k: v for k, v in {"math_per_module": math_per_module}.items() if k in spec.options}
    out = list(spec.examples(split, n, **options))
    if split != "train":
        random.Random(DATA_SEED).shuffle(out)  # a mixed, fixed held-out subset
    if n is not None:
        if n > len(out):
            raise ValueError(f"asked for {n} {task} {split} examples, only {len(out)} exist")
        out = out[:n]
    return out


@dataclass(frozen=True)
class HeldOut:
    """A fixed held-out set, encoded whole: no prompt is ever cut, so nothing about the gold answer (its
    position, its length) decides what the model sees at evaluation.

        h = held_out_set(tok, tasks.examples("squad", "validation"), n=200, max_prompt_tokens=360)
        h.examples, h.encoded, h.left_out_share      # 200 examples, their ids, the share too long to keep
    """
    examples: list
    encoded: list[Encoded]
    scanned: int     # examples looked at, in the held-out order, to find these
    left_out: int    # of those, the ones whose prompt was longer than ``max_prompt_tokens``

    @property
    def left_out_share(self) -> float:
        return self.left_out / self.scanned if self.scanned else 0.0


def held_out_pool(task: str, n: int, *, math_per_module: int = 2000) -> list:
    """Every held-out example of ``task`` in its fixed order, and at least ``n`` of them: a fixed split
    (SQuAD's 905 validation questions) is returned whole; a generated one (MATH) is drawn ``n`` strong."""
    pool = examples(task, "validation", n=None, math_per_module=math_per_module)
    if len(pool) < n:
        pool = examples(task, "validation", n=n, math_per_module=math_per_module)  # raises if n cannot exist
    return pool


def held_out_set(tok, pool, n: int, max_prompt_tokens: int) -> HeldOut:
    """The first ``n`` examples of ``pool`` whose whole prompt has at most ``max_prompt_tokens`` tokens
    (the rule reads the prompt only, never the answer), each encoded uncut with its answer and EOS."""
    from .batching import encode
    kept, encoded, scanned = [], [], 0
    for ex in pool:
        if len(kept) == n:
            break
        scanned += 1
        e = encode(tok, ex, max_length=None)
        if len(e.prompt_ids) <= max_prompt_tokens:
            kept.append(ex)
            encoded.append(e)
    if not kept:
        raise ValueError(f"no held-out example has a prompt of at most {max_prompt_tokens} tokens; "
                         f"raise eval_max_length")
    return HeldOut(kept, encoded, scanned, scanned - len(kept))


def newline_ids(tok) -> frozenset[int]:
    """Ids of every vocabulary token whose text holds a newline: greedy answers stop at the first one."""
    cached = getattr(tok, "_priorlib_newline_ids", None)
    if cached is None:
        vocab = range(len(tok))
        texts = tok.batch_decode([[i] for i in vocab])
        cached = frozenset(i for i, t in zip(vocab, texts) if "\n" in t)
        try:
            tok._priorlib_newline_ids = cached
        except AttributeError:
            pass
    return cached


def domain_texts(name: str, n: int, seed: int = DATA_SEED) -> list[str]:
    """Texts of a domain for activation references: ``web`` (the C4 stand-in), or any task's training
    examples (``squad``, ``math``, a registered task) as prompt + answer."""
    from . import data
    if name == "web":
        return data.load_web(n, seed=seed)
    if name == "math":
        ex = data.load_math("train", n_per_module=max(1, n // len(data.MATH_MODULES) + 1), seed=DATA_SEED)
    elif name in TASKS:
        ex = TASKS[name].examples("train", None)
    else:
        raise ValueError(f"unknown domain {name!r}; use web or a task ({', '.join(sorted(TASKS))})")
    ex = list(ex)
    random.Random(seed).shuffle(ex)
    if n > len(ex):
        raise ValueError(f"asked for {n} {name} texts, only {len(ex)} exist")
    return [e.prompt + e.target for e in ex[:n]]


def validation_totals(lm, encoded, batch_size: int, pad_id: int, autocast) -> tuple[float, int, int]:
    """``(summed answer loss in nats, answer tokens, tokens predicted greedily right)`` over ``encoded``
    under teacher forcing (batched, length-sorted)."""
    from .batching import collate
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
    return total, count, correct


def validation_scores(lm, encoded, batch_size: int, pad_id: int, autocast, *, curve: int | None = None,
                      head: tuple[float, int, int] | None = None) -> dict:
    """Over the fixed held-out set ``encoded``: the token-weighted mean answer loss (``val_loss``, nats)
    and the share of answer tokens the prompted model predicts greedily given the gold tokens before
    them (``val_token_accuracy``, percent; a finer signal than exact match where few answers are right).

    ``curve=k``: also the loss on the set's first ``k`` examples (``plateau_loss``), the learning curve
    the plateau rule reads, in the same pass; :func:`curve_scores` computes that alone. ``head``: the
    :func:`validation_totals` of those ``k`` already computed (a periodic evaluation at the same step)."""
    if curve is None:
        loss, n, ok = validation_totals(lm, encoded, batch_size, pad_id, autocast)
        return {"val_loss": loss / n, "val_token_accuracy": 100.0 * ok / n}
    head = head if head is not None else validation_totals(lm, encoded[:curve], batch_size, pad_id, autocast)
    rest = validation_totals(lm, encoded[curve:], batch_size, pad_id, autocast) if len(encoded) > curve else (0.0, 0, 0)
    loss, n, ok = (a + b for a, b in zip(head, rest))
    return {"val_loss": loss / n, "val_token_accuracy": 100.0 * ok / n, "plateau_loss": head[0] / head[1]}


def curve_scores(lm, encoded, batch_size: int, pad_id: int, autocast, *, curve: int) -> dict:
    """The periodic evaluation: ``plateau_loss`` on the held-out set's first ``curve`` examples only."""
    loss, n, _ = validation_totals(lm, encoded[:curve], batch_size, pad_id, autocast)
    return {"plateau_loss": loss / n}


def _decode(lm, tok, exs, prompts, targets, *, max_new_tokens: int, autocast, progress: bool, batch_size: int):
    """The decoding loop both scorers share: batched, length-sorted by prompt, each batch one call of
    :meth:`PromptedLM.score_and_generate` (``targets``: None, or each example's gold ids to score too).
    Returns the summed ``(loss, answer tokens, right tokens)`` (None without targets) and the answers,
    stopped at EOS or at the first token holding a newline, and cut at that newline."""
    import torch
    from tqdm.auto import tqdm
    dev = next(lm.parameters()).device
    order = sorted(range(len(exs)), key=lambda i: len(prompts[i]))
    stop = sorted({tok.eos_token_id, *newline_ids(tok)} - {None})
    preds: list[str] = [""] * len(exs)
    totals = None
    for s in tqdm(range(0, len(order), batch_size), desc="generate", disable=not progress, leave=False):
        idx = order[s: s + batch_size]
        with torch.no_grad(), autocast():
            scores, outs = lm.score_and_generate(
                [torch.tensor(prompts[i], device=dev) for i in idx],
                None if targets is None else [torch.tensor(targets[i], device=dev) for i in idx],
                max_new_tokens, stop_ids=stop, pad_id=tok.pad_token_id)
        if scores is not None:
            totals = scores if totals is None else tuple(a + b for a, b in zip(totals, scores))
        for i, o in zip(idx, outs):
            preds[i] = tok.decode(o, skip_special_tokens=True).split("\n", 1)[0].strip()
    return totals, preds


def _answer_scores(task: str, preds: list[str], exs) -> dict:
    """SQuAD EM/F1/precision/recall or MATH accuracy of ``preds``, each in percent."""
    score = check_task_name(task).score
    rows = [score(p, ex) for p, ex in zip(preds, exs)]
    return {k: 100.0 * sum(r[k] for r in rows) / len(rows) for k in (rows[0].keys() if rows else [])}


def fused_scores(lm, tok, exs, task: str, encoded, *, max_new_tokens: int, autocast, generate: bool = True,
                 progress: bool = True, batch_size: int = 16) -> tuple[dict, list[str]]:
    """:func:`validation_scores` (``val_loss``, ``val_token_accuracy``) and, when ``generate``,
    :func:`generation_scores` over the held-out set ``encoded`` (of ``exs``), from one prefill per batch
    (:meth:`priorlib.prompts.PromptedLM.score_and_generate`): the decoding layout, batched and
    length-sorted as generation is. The losses agree with the teacher-forced pass up to rounding (tested);
    a run's config says which of the two it used (``fused_eval``)."""
    (total, count, correct), preds = _decode(
        lm, tok, exs, [e.prompt_ids for e in encoded], [e.target_ids for e in encoded],
        max_new_tokens=max_new_tokens if generate else 0, autocast=autocast, progress=progress, batch_size=batch_size)
    out = {"val_loss": total / count, "val_token_accuracy": 100.0 * correct / count}
    return ({**out, **_answer_scores(task, preds, exs)} if generate else out), preds


def generation_scores(lm, tok, exs, task: str, *, prompts: list[tuple[int, ...]], max_new_tokens: int, autocast,
                      progress: bool = True, batch_size: int = 16) -> tuple[dict, list[str]]:
    """Greedy answers for ``exs`` from their whole ``prompts`` (token ids, as :func:`held_out_set` encodes
    them; batched, length-sorted), stopped at EOS or at the first token holding a newline, and cut at
    that newline: SQuAD EM/F1/precision/recall or MATH accuracy, each in percent."""
    _, preds = _decode(lm, tok, exs, prompts, None, max_new_tokens=max_new_tokens, autocast=autocast,
                       progress=progress, batch_size=batch_size)
    return _answer_scores(task, preds, exs), preds
