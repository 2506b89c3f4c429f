"""``priorlib bench``: priorlib against PEFT prompt tuning, interleaved in one process.

Every case runs the same batches (SQuAD, 8 x 256 text tokens + 20 prompt tokens by default) from the
same initial prompt. Steps of the cases alternate round by round, so a noisy machine slows every case
alike and the *ratios* are what to read. Before timing, the first-step losses of priorlib and PEFT
must agree (a fast wrong result cannot pass), and the first few steps' losses are recorded side by
side. Results go to ``benchmarks/results.json`` and ``book/performance.md``.
"""
from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm



def add_arguments(p) -> None:
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=256, help="text tokens per row (the prompt adds 20)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds after one warm-up round")
    p.add_argument("--curve-steps", type=int, default=4, help="steps whose losses are compared")
    p.add_argument("--capture-texts", type=int, default=64)
    p.add_argument("--out", default=None, help="results JSON (default: benchmarks/results.json of the repository)")
    p.add_argument("--page", default=None, help="performance page (default: book/performance.md of the repository)")
    p.add_argument("--skip", nargs="*", default=[], help="sections to skip: train capture deep")


# ---------------------------------------------------------------------------------------------
def matmul_peak(dtype, n: int | None = None, reps: int = 5) -> float:
    """GFLOP/s of an n^3 matmul in ``dtype`` (best of ``reps``). ``n`` defaults to 2048, or 512 for bf16
    on a CPU without native bf16 (emulated there at ~0.3 GFLOP/s: 2048 would take a minute per matmul)."""
    if n is None:
        from priorlib.hardware import native_bf16
        n = 512 if dtype == torch.bfloat16 and native_bf16("cpu") is False else 2048
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def fixed_batches(tok, n_batches: int, batch_size: int, seq_len: int):
    """Right-sized SQuAD batches: every row exactly ``seq_len`` tokens, the answer at its end."""
    from priorlib.batching import collate, encode
    from priorlib.data import load_squad
    rows = []
    for ex in load_squad("train"):
        e = encode(tok, ex, seq_len)
        if e.length == seq_len:
            rows.append(e)
        if len(rows) == n_batches * batch_size:
            break
    return [collate(rows[i * batch_size:(i + 1) * batch_size], tok.pad_token_id) for i in range(n_batches)]


class Case:
    """One way of doing a training step: ``loss(ids, labels)`` plus its own prompt and optimizer."""

    def __init__(self, name, params, loss_fn, autocast: bool):
        self.name, self.params, self.loss_fn, self.autocast = name, params, loss_fn, autocast
        self.opt = torch.optim.AdamW(params, lr=1e-3)
        self.times: list[float] = []
        self.losses: list[float] = []

    def step(self, ids, labels) -> float:
        t = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            loss = self.loss_fn(ids, labels)
        loss.backward()
        self.opt.step()
        dt = time.perf_counter() - t
        self.losses.append(float(loss.detach()))
        return dt


def _priorlib_case(name, model, init, autocast, compiled=False):
    from priorlib.compiled import compiled_layers
    from priorlib.prompts import PromptedLM
    lm = PromptedLM.build(model, method="soft", n_tokens=init.shape[0], soft_init=init)

    def loss(ids, labels):
        with compiled_layers(model, on=compiled):
            s, n = lm.answer_loss(ids, labels)
        return s / n
    return Case(name, list(lm.parameters()), loss, autocast)


def _peft_case(name, model, init, autocast):
    from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model
    cfg = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=init.shape[0],
                             prompt_tuning_init=PromptTuningInit.RANDOM)
    pm = get_peft_model(model, cfg)
    emb = pm.prompt_encoder["default"].embedding
    emb.float()
    with torch.no_grad():
        emb.weight.copy_(init)

    def loss(ids, labels):
        return pm(input_ids=ids, labels=labels).loss
    return Case(name, [emb.weight], loss, autocast)


def bench_train(args, results: dict) -> None:
    from priorlib.models import load_model
    m32, tok = load_model(args.model, dtype=torch.float32)
    cases_spec = [
        ("PEFT fp32 (default)", "peft", torch.float32, False, "sdpa"),
        ("PEFT bf16 + autocast", "peft", torch.bfloat16, True, "sdpa"),
        ("priorlib fp32", "priorlib", torch.float32, False, "sdpa"),
        ("priorlib bf16 (sdpa)", "priorlib", torch.bfloat16, True, "sdpa"),
        ("priorlib bf16 (eager attention)", "priorlib", torch.bfloat16, True, "eager"),
        ("priorlib bf16 (eager attention, compiled layers)", "priorlib-compiled", torch.bfloat16, True, "eager"),
    ]
    init = torch.randn(20, m32.config.hidden_size, generator=torch.Generator().manual_seed(0)) * 0.1
    cases = []
    for name, kind, dtype, ac, attn in cases_spec:
        model, _ = load_model(args.model, dtype=dtype, attn_implementation=attn)
        if kind == "peft":
            cases.append(_peft_case(name, model, init, ac))
        else:
            cases.append(_priorlib_case(name, model, init, ac, compiled=kind == "priorlib-compiled"))
    del m32
    n_batches = max(args.rounds + 1, args.curve_steps)
    batches = fixed_batches(tok, n_batches, args.batch_size, args.seq_len)
    # correctness: first-step losses agree (same prompt, same batch) before anything is timed
    first_step_s = {}
    for b in range(args.curve_steps):
        for c in cases:
            dt = c.step(*batches[b])
            first_step_s.setdefault(c.name, dt)  # the compiled case's includes tracing and compiling
    curves = {c.name: c.losses[: args.curve_steps] for c in cases}
    ref32, ref16 = curves["PEFT fp32 (default)"][0], curves["PEFT bf16 + autocast"][0]
    checks = {c.name: abs(c.losses[0] - (ref32 if "fp32" in c.name else ref16)) for c in cases}
    tol = {c.name: (1e-4 if "fp32" in c.name else 0.05) for c in cases}
    bad = [n for n in checks if checks[n] > tol[n]]
    if bad:
        raise RuntimeError(f"first-step losses disagree with PEFT: {[(n, checks[n]) for n in bad]}")
    for c in cases:
        c.times.clear()
    peak_before = matmul_peak(torch.bfloat16)
    for r in tqdm(range(args.rounds + 1), desc="train rounds"):
        for c in cases:  # interleaved: each round times every case once
            dt = c.step(*batches[r % len(batches)])
            if r > 0:
                c.times.append(dt)
    peak_after = matmul_peak(torch.bfloat16)
    peak = max(peak_before, peak_after)
    params = sum(p.numel() for p in load_model(args.model)[0].parameters())
    tokens = args.batch_size * (args.seq_len + 20)
    rows = []
    base16 = statistics.median(cases[1].times)
    base32 = statistics.median(cases[0].times)
    for c in cases:
        med = statistics.median(c.times)
        flops = 4 * params * tokens  # forward 2PT + backward to the inputs 2PT (frozen weights need no weight grads)
        rows.append({"case": c.name, "s_per_step": med, "tokens_per_s": tokens / med,
                     "speedup_vs_peft_bf16": base16 / med, "speedup_vs_peft_fp32": base32 / med,
                     "mfu_vs_bf16_peak": flops / med / (peak * 1e9), "first_loss": c.losses[0],
                     "first_loss_gap": checks[c.name], "first_step_s": first_step_s[c.name], "times": c.times})
    results["train"] = {"rows": rows, "loss_curves": curves, "bf16_peak_gflops": peak,
                        "bf16_peak_gflops_before_after": [peak_before, peak_after],
                        "fp32_peak_gflops": matmul_peak(torch.float32), "params": params,
                        "tokens_per_step": tokens, "batch": [args.batch_size, args.seq_len + 20]}


def bench_capture(args, results: dict) -> None:
    from priorlib.data import load_web
    from priorlib.activations import capture
    from priorlib.models import load_model
    m32, tok = load_model(args.model, dtype=torch.float32)
    m16, _ = load_model(args.model, dtype=torch.bfloat16)
    texts = load_web(args.capture_texts, min_chars=1500)
    L = m32.config.num_hidden_layers
    cases = {
        "output_hidden_states, fp32 (baseline)": lambda: _hidden_states_baseline(m32, tok, texts, args.seq_len),
        f"priorlib layers.{L // 2 - 1}, bf16, early stop": lambda: capture(
            m16, tok, texts, [f"layers.{L // 2 - 1}.resid_post"], max_length=args.seq_len, progress=False),
        f"priorlib layers.{L - 1}, bf16": lambda: capture(
            m16, tok, texts, [f"layers.{L - 1}.resid_post"], max_length=args.seq_len, progress=False),
    }
    times = {k: [] for k in cases}
    for r in tqdm(range(3), desc="capture rounds"):
        for k, fn in cases.items():
            t = time.perf_counter()
            fn()
            if r > 0:
                times[k].append(time.perf_counter() - t)
    base = statistics.median(times["output_hidden_states, fp32 (baseline)"])
    results["capture"] = {"texts": len(texts), "max_length": args.seq_len, "rows": [
        {"case": k, "s": statistics.median(v), "speedup": base / statistics.median(v), "times": v}
        for k, v in times.items()]}


@torch.no_grad()
def _hidden_states_baseline(model, tok, texts, max_length, batch_size=16):
    from priorlib.hooks import tokenize_batch
    out = []
    for s in range(0, len(texts), batch_size):
        ids, mask = tokenize_batch(tok, texts[s:s + batch_size], max_length, "cpu")
        hs = model(input_ids=ids, output_hidden_states=True).hidden_states
        out.append(hs[-1][mask].half())
    return out


def bench_deep(args, results: dict) -> None:
    from priorlib.compiled import compiled_layers
    from priorlib.models import load_model, resolve_attention
    from priorlib.prompts import PromptedLM
    attn = resolve_attention("auto", "cpu")  # what the trainer runs here (eager attention on CPU)
    model, tok = load_model(args.model, dtype=torch.bfloat16, attn_implementation=attn)
    batches = fixed_batches(tok, args.rounds + 1, args.batch_size, args.seq_len)
    torch.manual_seed(0)
    lm = PromptedLM.build(model, method="deep", n_tokens=20, deep_layers=(-3, -2, -1), token_prompt=False)
    with torch.no_grad():
        for p in lm.parameters():
            p.normal_(0, 0.1)
    opt = torch.optim.AdamW(lm.parameters(), lr=1e-3)
    t = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        states = [lm.frozen_states(ids) for ids, _ in batches]
    prefill = (time.perf_counter() - t) / len(batches)

    def full(i):
        ids, labels = batches[i]
        s, n = lm.answer_loss(ids, labels)
        return s / n

    def cached(i):
        s, n = lm.loss_from_hidden(lm.hidden_from_states(states[i]), batches[i][1])
        return s / n

    def cached_compiled(i):
        with compiled_layers(model, start=lm.lower_layers_frozen_below()):
            return cached(i)

    cases = (("full backprop", full), ("cached lower layers", cached),
             ("cached lower layers, compiled top layers", cached_compiled))
    losses = {name: [] for name, _ in cases}
    times = {name: [] for name, _ in cases}
    for r in tqdm(range(args.rounds + 1), desc="deep rounds"):
        for name, fn in cases:
            t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = fn(r % len(batches))
            loss.backward()
            losses[name].append(float(loss.detach()))
            if r > 0:
                times[name].append(time.perf_counter() - t)
            opt.zero_grad(set_to_none=True)  # every case sees the same prompts: the losses must agree
    gaps = {name: max(abs(a - b) for a, b in zip(v, losses["full backprop"])) for name, v in losses.items()}
    if max(gaps.values()) > 0.05:
        raise RuntimeError(f"deep-prompt losses disagree with full backprop: {gaps}")
    f = statistics.median(times["full backprop"])
    rows = [{"case": name, "s": statistics.median(times[name]), "speedup": f / statistics.median(times[name]),
             "max_loss_gap": gaps[name]} for name, _ in cases]
    results["deep"] = {"rows": rows, "s_full": f, "s_cached": rows[1]["s"], "speedup": rows[1]["speedup"],
                       "speedup_compiled": rows[2]["speedup"], "one_time_prefill_s_per_batch": prefill,
                       "attention": attn, "measured": time.strftime("%Y-%m-%d %H:%M"),
                       "losses": losses, "times": times}


# ---------------------------------------------------------------------------------------------
def environment() -> dict:
    import transformers
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line
                break
        cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                    if l.startswith("model name")), platform.processor())
    except OSError:
        cpu = platform.processor()
    try:
        import peft
        peft_v = peft.__version__
    except ImportError:
        peft_v = None
    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft_v,
            "python": platform.python_version(), "cpu": cpu, "threads": torch.get_num_threads(),
            "cpu_flags": sorted(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")
                                if f in flags.split()),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%d %H:%M")}


def run(args) -> int:
    from priorlib.compendium.paths import repo_root
    root = repo_root()  # the repository being benchmarked (from the working directory), not the package's own
    out = Path(args.out) if args.out else root / "benchmarks" / "results.json"
    page_path = Path(args.page) if args.page else root / "book" / "performance.md"
    results = {"environment": environment()}
    if args.skip and out.exists():  # sections not rerun keep their last measurement
        old = json.loads(out.read_text())
        results.update({k: v for k, v in old.items() if k in args.skip})
        results["environment"]["date_of_skipped"] = old.get("environment", {}).get("date")
    if "train" not in args.skip:
        bench_train(args, results)
    if "capture" not in args.skip:
        bench_capture(args, results)
    if "deep" not in args.skip:
        bench_deep(args, results)
    from priorlib.checkpoint import atomic_write_text
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(results, indent=1))
    from priorlib.compendium.performance import write_page
    print(write_page(root, results, page_path))
    return 0
