"""``priorlib bench-gpu``: the training, deep-prompt and capture benchmarks on an accelerator, with no weights.

    priorlib bench-gpu                                    # on a machine with a CUDA GPU: measure, write the page
    python -m priorlib.compendium.bench_gpu --out $OUT/gpu.json   # the same where priorlib is not installed
    priorlib bench-gpu --from gpu.json                    # back here: keep those figures, rewrite the page
    priorlib bench-gpu --device cpu --shapes tiny --out /tmp/g.json   # the same code on a toy shape (the test)

Weights cannot travel to a lent GPU machine, and speed does not depend on what the weights are: each shape
(:data:`SHAPES`: SmolLM2-135M's and Llama-3.2-1B's published configurations) is built with random weights
in bf16, and the batches are random token ids whose last :data:`ANSWER` tokens are the answer. Every case
of a section runs the same batches from the same prompts, their steps alternating round by round, and the
first-step losses must agree before anything is timed (PEFT against priorlib within 0.05; the deep cases
against full backprop within 0.05), as in :mod:`priorlib.compendium.bench`. Each section is written to the
JSON as soon as it finishes, so a run cut short still returns what it measured; a section that fails records
its error instead of stopping the others. The performance page renders ``benchmarks/gpu.json``
(:func:`priorlib.compendium.performance.gpu_markdown`).
"""
from __future__ import annotations

import copy
import json
import statistics
import time
import traceback
from pathlib import Path

import torch

ANSWER = 16  # answer tokens at the end of every row (SQuAD answers are a few tokens)
PROMPT = 20

# published configurations (config.json of HuggingFaceTB/SmolLM2-135M and meta-llama/Llama-3.2-1B)
SHAPES: dict[str, dict] = {
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192,
                         rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True),
    "llama-3.2-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072,
                         rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=True, head_dim=64,
                         rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                       "original_max_position_embeddings": 8192, "rope_type": "llama3"}),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512, max_position_embeddings=512, tie_word_embeddings=True),
}


def add_arguments(p) -> None:
    p.add_argument("--shapes", nargs="+", default=["smollm2-135m", "llama-3.2-1b"], choices=sorted(SHAPES))
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 64],
                   help="rows per step (8: the CPU benchmark's batch)")
    p.add_argument("--seq-len", type=int, default=256, help="text tokens per row (the prompt adds 20)")
    p.add_argument("--rounds", type=int, default=10, help="timed rounds after two warm-up rounds")
    p.add_argument("--capture-texts", type=int, default=256)
    p.add_argument("--skip", nargs="*", default=[], help="sections to skip: train deep capture")
    p.add_argument("--out", default=None, help="results JSON (default: benchmarks/gpu.json of the repository, "
                   "and the performance page is rewritten)")
    p.add_argument("--from", dest="from_", default=None, metavar="JSON",
                   help="measure nothing: copy these results (measured on another machine) to benchmarks/gpu.json "
                        "and rewrite the performance page")


def random_model(shape: str, device, dtype=torch.bfloat16, attn: str = "sdpa"):
    """A causal LM of ``shape``'s configuration with random weights (seed 0), frozen, in ``dtype``."""
    from transformers import LlamaConfig, LlamaForCausalLM
    if shape not in SHAPES:
        raise ValueError(f"no shape {shape!r}; shapes: {', '.join(sorted(SHAPES))}")
    torch.manual_seed(0)
    cfg = LlamaConfig(**SHAPES[shape], attn_implementation=attn)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(dtype)
    model.eval().requires_grad_(False)
    return model


def random_batches(vocab: int, n: int, batch: int, seq_len: int, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` batches of ``(ids [batch, seq_len], labels)``: random ids, the last ``ANSWER`` of each row the answer."""
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        ids = torch.randint(3, vocab, (batch, seq_len), generator=g)
        labels = torch.full_like(ids, -100)
        labels[:, -ANSWER:] = ids[:, -ANSWER:]
        out.append((ids.to(device), labels.to(device)))
    return out


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def matmul_tflops(device, n: int = 8192, reps: int = 10) -> float:
    """bf16 ``n^3`` matmul rate on ``device`` (mean of ``reps`` after 3 warm-ups), TFLOP/s."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e12


def _interleave(cases: dict, batches, rounds: int, device, warmup: int = 2) -> tuple[dict, dict, dict]:
    """Run every case on every batch, case after case within a round; returns ``(times, losses, failed)``
    per case (times of the rounds after ``warmup``, which include compiling). A case that raises is dropped
    and its error kept in ``failed`` (a failed compile must not cost the plain cases' figures); the first
    case is the reference and may not fail."""
    times = {k: [] for k in cases}
    losses = {k: [] for k in cases}
    failed: dict[str, str] = {}
    for r in range(warmup + rounds):
        for name, step in cases.items():
            if name in failed:
                continue
            _sync(device)
            t = time.perf_counter()
            try:
                loss = step(*batches[r % len(batches)])
                _sync(device)
            except Exception as err:
                if name == next(iter(cases)):
                    raise
                failed[name] = f"{type(err).__name__}: {str(err)[:500]}"
                print(f"  {name}: FAILED {failed[name]}", flush=True)
                continue
            if r >= warmup:
                times[name].append(time.perf_counter() - t)
            losses[name].append(loss)
    for name in failed:
        del times[name], losses[name]
    return times, losses, failed


def _stepper(params, loss_fn, device):
    opt = torch.optim.AdamW(params, lr=1e-3)
    dev = torch.device(device).type

    def step(ids, labels) -> float:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev, dtype=torch.bfloat16):
            loss = loss_fn(ids, labels)
        loss.backward()
        opt.step()
        return float(loss.detach())
    return step


def bench_train(shape: str, batch: int, args) -> dict:
    """Soft-prompt training step: PEFT bf16 against priorlib bf16, plain and with compiled layers."""
    from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

    from priorlib.compiled import compiled_layers
    from priorlib.prompts import PromptedLM
    base = random_model(shape, args.device)
    d = base.config.hidden_size
    init = torch.randn(PROMPT, d, generator=torch.Generator().manual_seed(0)) * 0.02
    pm = get_peft_model(copy.deepcopy(base), PromptTuningConfig(
        task_type=TaskType.CAUSAL_LM, num_virtual_tokens=PROMPT, prompt_tuning_init=PromptTuningInit.RANDOM))
    emb = pm.prompt_encoder["default"].embedding.float()
    with torch.no_grad():
        emb.weight.copy_(init)
    cases = {"PEFT bf16 + autocast": _stepper([emb.weight], lambda i, l: pm(input_ids=i, labels=l).loss, args.device)}
    for name, compiled in (("priorlib bf16", False), ("priorlib bf16, compiled layers", True)):
        model = copy.deepcopy(base)
        lm = PromptedLM.build(model, method="soft", n_tokens=PROMPT, soft_init=init.clone()).to(args.device)

        def loss(i, l, lm=lm, model=model, compiled=compiled):
            with compiled_layers(model, on=compiled):
                s, n = lm.answer_loss(i, l)
            return s / n
        cases[name] = _stepper(list(lm.parameters()), loss, args.device)
    batches = random_batches(base.config.vocab_size, 4, batch, args.seq_len, args.device)
    times, losses, failed = _interleave(cases, batches, args.rounds, args.device)
    gaps = {k: abs(v[0] - losses["PEFT bf16 + autocast"][0]) for k, v in losses.items()}
    if max(gaps.values()) > 0.05:
        raise RuntimeError(f"first-step losses disagree with PEFT: {gaps}")
    params = sum(p.numel() for p in base.parameters())
    tokens = batch * (args.seq_len + PROMPT)
    ref = statistics.median(times["PEFT bf16 + autocast"])
    rows = []
    for k in times:
        med = statistics.median(times[k])
        rows.append({"case": k, "s_per_step": med, "tokens_per_s": tokens / med, "speedup_vs_peft_bf16": ref / med,
                     "tflops": 4 * params * tokens / med / 1e12, "first_loss": losses[k][0],
                     "first_loss_gap": gaps[k], "times": times[k]})
    return {"shape": shape, "batch": [batch, args.seq_len + PROMPT], "params": params, "rows": rows,
            "losses": losses, "failed": failed}


def bench_deep(shape: str, batch: int, args) -> dict:
    """Deep prompts on the last 3 layers: full backprop, cached lower layers, cached and compiled."""
    from priorlib.compiled import compiled_layers
    from priorlib.prompts import PromptedLM
    model = random_model(shape, args.device)
    torch.manual_seed(0)
    lm = PromptedLM.build(model, method="deep", n_tokens=PROMPT, deep_layers=(-3, -2, -1),
                          token_prompt=False).to(args.device)
    with torch.no_grad():
        for p in lm.parameters():
            p.normal_(0, 0.02)
    batches = random_batches(model.config.vocab_size, 4, batch, args.seq_len, args.device)
    dev = torch.device(args.device).type
    with torch.no_grad(), torch.autocast(dev, dtype=torch.bfloat16):
        states = {id(ids): lm.frozen_states(ids) for ids, _ in batches}  # [B, T, d] bf16, once per batch

    def grad_only(fn):
        def step(ids, labels) -> float:  # no optimizer step: every case sees the same prompts
            for p in lm.parameters():
                p.grad = None
            with torch.autocast(dev, dtype=torch.bfloat16):
                loss = fn(ids, labels)
            loss.backward()
            return float(loss.detach())
        return step

    def full(ids, labels):
        s, n = lm.answer_loss(ids, labels)
        return s / n

    def cached(ids, labels):
        s, n = lm.loss_from_hidden(lm.hidden_from_states(states[id(ids)]), labels)
        return s / n

    def cached_compiled(ids, labels):
        with compiled_layers(model, start=lm.lower_layers_frozen_below()):
            return cached(ids, labels)
    cases = {"full backprop": grad_only(full), "cached lower layers": grad_only(cached),
             "cached lower layers, compiled top layers": grad_only(cached_compiled)}
    times, losses, failed = _interleave(cases, batches, args.rounds, args.device)
    gaps = {k: max(abs(a - b) for a, b in zip(v, losses["full backprop"])) for k, v in losses.items()}
    if max(gaps.values()) > 0.05:
        raise RuntimeError(f"deep-prompt losses disagree with full backprop: {gaps}")
    ref = statistics.median(times["full backprop"])
    return {"shape": shape, "batch": [batch, args.seq_len], "rows": [
        {"case": k, "s_per_step": statistics.median(times[k]), "speedup": ref / statistics.median(times[k]),
         "max_loss_gap": gaps[k], "times": times[k]} for k in times], "failed": failed}


def bench_capture(shape: str, args) -> dict:
    """Activations of ``capture_texts`` rows: every hidden state (``output_hidden_states``) against one
    hook point with early stop (mid depth) and one at the last layer."""
    from priorlib.hooks import Trace
    model = random_model(shape, args.device)
    L = model.config.num_hidden_layers
    batches = random_batches(model.config.vocab_size, max(1, args.capture_texts // 32), 32, args.seq_len,
                             args.device)

    @torch.no_grad()
    def hidden_states(ids, labels):
        return float(model(input_ids=ids, output_hidden_states=True).hidden_states[L // 2][0, 0, 0])

    def point(k):
        @torch.no_grad()
        def run(ids, labels):
            with Trace(model, [f"layers.{k}.resid_post"], stop=True) as tr:
                tr.run(input_ids=ids)
            return float(tr[f"layers.{k}.resid_post"][0, 0, 0])
        return run
    cases = {"output_hidden_states (baseline)": hidden_states, f"priorlib layers.{L // 2 - 1}, early stop": point(L // 2 - 1),
             f"priorlib layers.{L - 1}": point(L - 1)}
    agree = abs(hidden_states(*batches[0]) - point(L // 2 - 1)(*batches[0]))
    if agree > 1e-2:
        raise RuntimeError(f"the hook point's activation differs from output_hidden_states by {agree}")

    def whole(fn):
        def run(*_):
            for b in batches:
                fn(*b)
            return 0.0
        return run
    times, _, failed = _interleave({k: whole(v) for k, v in cases.items()}, batches, max(3, args.rounds // 3),
                           args.device, warmup=1)
    ref = statistics.median(times["output_hidden_states (baseline)"])
    return {"shape": shape, "rows_per_batch": 32, "texts": len(batches) * 32, "max_length": args.seq_len, "rows": [
        {"case": k, "s": statistics.median(times[k]), "speedup": ref / statistics.median(times[k]),
         "times": times[k]} for k in times], "failed": failed}


def environment(device) -> dict:
    import platform

    import transformers
    try:
        import peft
        peft_v = peft.__version__
    except ImportError:
        peft_v = None
    cuda = torch.device(device).type == "cuda"
    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft_v,
            "python": platform.python_version(), "device": device,
            "card": torch.cuda.get_device_name(0) if cuda else platform.processor(),
            "cuda": torch.version.cuda if cuda else None, "date": time.strftime("%Y-%m-%d %H:%M")}


def run(args) -> int:
    from priorlib.compendium.paths import repo_root
    root = repo_root()
    default = root / "benchmarks" / "gpu.json"
    if args.from_:
        src = Path(args.from_)
        if not src.is_file():
            raise ValueError(f"--from: no results file {src}")
        g = json.loads(src.read_text())
        if not {"environment", "train", "deep", "capture", "errors"} <= set(g):
            raise ValueError(f"--from: {src} is not priorlib bench-gpu output (needs environment, train, deep, "
                             "capture and errors)")
        from priorlib.checkpoint import atomic_write_text
        default.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(default, json.dumps(g, indent=1))
        from priorlib.compendium.performance import write_page
        write_page(root)
        print(f"{default} and {root / 'book' / 'performance.md'} written")
        return 0
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: torch {torch.__version__} sees no CUDA GPU here")
    out = Path(args.out) if args.out else default
    results: dict = {"environment": environment(args.device), "train": [], "deep": [], "capture": [], "errors": []}

    def save():
        from priorlib.checkpoint import atomic_write_text
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(results, indent=1))

    def attempt(section, fn, *a):
        t = time.perf_counter()
        try:
            r = fn(*a, args)
            r["wall_s"] = time.perf_counter() - t
            results[section].append(r)
            print(f"{section} {a}: " + "; ".join(f"{x['case']} {x.get('speedup_vs_peft_bf16', x.get('speedup')):.2f}x"
                                                  for x in r["rows"]), flush=True)
        except Exception as err:  # one failed section must not lose the others' figures
            results["errors"].append({"section": section, "args": list(a), "error": f"{type(err).__name__}: {err}",
                                      "traceback": traceback.format_exc()[-3000:]})
            print(f"{section} {a}: FAILED {type(err).__name__}: {err}", flush=True)
        finally:
            if torch.device(args.device).type == "cuda":
                torch.cuda.empty_cache()
        save()
    if torch.device(args.device).type == "cuda":
        results["environment"]["bf16_matmul_tflops"] = matmul_tflops(args.device)
    save()
    for shape in args.shapes:
        for batch in args.batch_sizes:
            if "train" not in args.skip:
                attempt("train", bench_train, shape, batch)
            if "deep" not in args.skip:
                attempt("deep", bench_deep, shape, batch)
        if "capture" not in args.skip:
            attempt("capture", bench_capture, shape)
    if out == default:
        from priorlib.compendium.performance import write_page
        write_page(root)
    return 1 if results["errors"] else 0


def main() -> int:  # ``python -m priorlib.compendium.bench_gpu`` where the console script is not installed
    import argparse
    p = argparse.ArgumentParser(prog="bench_gpu", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
