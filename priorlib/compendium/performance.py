"""The book's performance page, ``book/performance.md``: the interleaved benchmarks (``priorlib bench``,
``benchmarks/results.json``), the same benchmarks on a lent GPU (``priorlib bench-gpu``,
``benchmarks/gpu.json``) and the evidence's cost model (``priorlib evidence costs``,
``benchmarks/costs.json``). Each of these commands rewrites the whole page from all three files."""
from __future__ import annotations

import json
from pathlib import Path

PHASES = ("train", "curve", "full", "generation", "overhead")


def bench_markdown(results: dict) -> str:
    env = results["environment"]
    lines = ["# Performance", "",
             f"Measured by `priorlib bench` on {env['date']}"
             + (f" (sections not rerun then: {env['date_of_skipped']})" if env.get("date_of_skipped") else "")
             + f": {env['cpu']}, {env['threads']} threads, "
             f"torch {env['torch']}, transformers {env['transformers']}, PEFT {env['peft']}"
             f" (CPU flags: {', '.join(env['cpu_flags']) or 'none'}). Every table comes from one process in which "
             "the cases' steps alternate, so read the ratios; absolute seconds vary with the machine's load.", ""]
    if "train" in results:
        t = results["train"]
        lines += [f"## Soft-prompt training step ({t['batch'][0]} x {t['batch'][1]} tokens, SQuAD)", "",
                  "| case | s/step (median) | tokens/s | vs PEFT bf16 | vs PEFT fp32 | MFU vs bf16 peak | step-1 loss |",
                  "|---|---|---|---|---|---|---|"]
        for r in t["rows"]:
            lines.append(f"| {r['case']} | {r['s_per_step']:.2f} | {r['tokens_per_s']:.0f} | "
                         f"{r['speedup_vs_peft_bf16']:.2f}x | {r['speedup_vs_peft_fp32']:.2f}x | "
                         f"{100 * r['mfu_vs_bf16_peak']:.0f}% | {r['first_loss']:.4f} |")
        lines += ["", f"bf16 matmul peak in the same run: {t['bf16_peak_gflops']:.0f} GFLOP/s (fp32: "
                  f"{t['fp32_peak_gflops']:.0f}). Model FLOPs per step are 4 x {t['params'] / 1e6:.1f}M parameters "
                  f"x {t['tokens_per_step']} tokens (forward, and backward to the inputs only: the weights are frozen).",
                  "", "Losses of the first steps, same batches and same initial prompt (agreement is checked "
                  "before timing; the fp32 cases must match PEFT fp32 within 1e-4, the bf16 ones PEFT bf16 within 0.05):", "",
                  "| case | " + " | ".join(f"step {i + 1}" for i in range(len(next(iter(t['loss_curves'].values()))))) + " |",
                  "|---|" + "---|" * len(next(iter(t["loss_curves"].values())))]
        for k, v in t["loss_curves"].items():
            lines.append(f"| {k} | " + " | ".join(f"{x:.4f}" for x in v) + " |")
    if "capture" in results:
        c = results["capture"]
        lines += ["", f"## Activation capture ({c['texts']} web-text documents, the C4 stand-in, up to {c['max_length']} tokens)", "",
                  "| case | s | speed-up |", "|---|---|---|"]
        for r in c["rows"]:
            lines.append(f"| {r['case']} | {r['s']:.2f} | {r['speedup']:.2f}x |")
    if "deep" in results:
        d = results["deep"]
        lines += ["", "## Deep prompts on the last 3 layers only (no token-level prompt)", "",
                  f"Measured {d.get('measured', env['date'])}, {d.get('attention', 'sdpa')} attention, the same batches "
                  "as above.", "",
                  "| case | s/step | speed-up | largest loss gap to full backprop |", "|---|---|---|---|",
                  *[f"| {r['case']} | {r['s']:.2f} | {r['speedup']:.2f}x | {r['max_loss_gap']:.4f} |" for r in d["rows"]], "",
                  "Each round, every case computes the loss and the prompts' gradient on the same batch from the same "
                  "prompts (no optimizer step is applied, so the cases stay comparable and their losses must agree "
                  "within 0.05 before the table is written; the AdamW step on 3 x 20 x 576 numbers is negligible).", "",
                  f"Filling the cache costs {d['one_time_prefill_s_per_batch']:.2f} s per batch, once per example "
                  "(the first epoch). Gradients are identical (tests/test_cached_deep.py)."]
    lines += ["", "Rerun with `make bench` (or `priorlib bench`); the raw figures are in `benchmarks/results.json`."]
    return "\n".join(lines) + "\n"


def steps_for_share(actual: list[dict], share: float = 0.15) -> float | None:
    """The step count at which evaluation plus decoding would be ``share`` of a run, at the same evaluation
    sizes, from :func:`priorlib.compendium.costs.bank_actuals` (pooled over its kinds): training and the curve evaluations grow with
    the steps (one curve evaluation per ``eval_every``), the two full evaluations and the one decoding do
    not. Per run: ``t`` training and ``c`` curve seconds per step, ``F`` fixed seconds; the share
    ``(c N + F) / ((t + c) N + F)`` falls to ``share`` at ``N = (1 - share) F / (share (t + c) - c)``.
    ``None`` when the curve evaluations alone are above ``share`` (no run length gets there)."""
    rows = [a for a in actual if a.get("phase_share") and a["runs"] and a["median_steps"]]
    if not rows:
        return None
    runs = sum(a["runs"] for a in rows)
    per_run = {k: sum(a["phase_share"][k] * a["cpu_h"] * 3600 for a in rows) / runs
               for k in ("train", "curve", "full", "generation")}
    steps = sum(a["median_steps"] * a["runs"] for a in rows) / runs
    t, c, fixed = per_run["train"] / steps, per_run["curve"] / steps, per_run["full"] + per_run["generation"]
    denom = share * (t + c) - c
    return (1 - share) * fixed / denom if denom > 0 else None


def costs_markdown(result: dict) -> str:
    """The performance page's section: units per kind, then the projection per chapter."""
    lines = ["## What the evidence costs", "",
             f"Measured by `priorlib evidence costs --measure` on {result['date']} ({result['machine']}), for the "
             f"`{result['profile']}` profile's plans: one run of each kind, {result['measure_steps']} steps with a periodic "
             f"evaluation every {result['measure_eval_every']}, then a full evaluation and the greedy decoding, each phase "
             "read from the run's own logs.", "",
             "| kind of run | measured on | s per step | s per curve evaluation | s per full evaluation | "
             "s per decoding | first-step overhead (s) |", "|---|---|---|---|---|---|---|"]
    for label, u in result["units"].items():
        lines.append(f"| {label} | {u.get('source', 'probe')} | {u['train']:.2f} | {u['curve']:.1f} | {u['full']:.1f} | "
                     f"{u['generation']:.1f} | {u['overhead']:.1f} |")
    rows = result["projection"]
    total = {ph: sum(r[ph] for r in rows) for ph in PHASES}
    t_all = sum(total.values())
    lines += ["", "Projected CPU-hours per chapter, every run at its step cap (an upper bound: runs that reach "
              "their plateau stop earlier):", "",
              "| chapter | runs (and shared with an earlier chapter) | training | curve evaluations | full evaluations | "
              "decoding | other | CPU-hours | evaluation + decoding |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        share = "—" if r["eval_share"] is None else f"{100 * r['eval_share']:.0f}%"
        lines.append(f"| {r['chapter']} | {r['runs']} (+{r.get('shared', 0)}) | {r['train']:.2f} | {r['curve']:.2f} | {r['full']:.2f} | "
                     f"{r['generation']:.2f} | {r['overhead']:.2f} | {r['cpu_h']:.2f} | {share} |")
    ev = (total["curve"] + total["full"] + total["generation"]) / t_all if t_all else 0.0
    lines += [f"| **bank** | {sum(r['runs'] for r in rows)} | {total['train']:.2f} | {total['curve']:.2f} | "
              f"{total['full']:.2f} | {total['generation']:.2f} | {total['overhead']:.2f} | **{t_all:.1f}** | "
              f"{100 * ev:.0f}% |", "",
              f"The whole bank: at most **{t_all:.1f} CPU-hours** on the machine measured ({result['machine']}); "
              f"evaluation plus decoding take {100 * ev:.0f}% of it. Rerun with `priorlib evidence costs --measure`; "
              "the figures are in `benchmarks/costs.json`."]
    actual = result.get("bank") or []
    if actual:
        n = sum(a["runs"] for a in actual)
        h = sum(a["cpu_h"] for a in actual)
        pooled = sum(a["eval_share"] * a["cpu_h"] for a in actual if a["eval_share"] is not None) / h if h else 0.0
        lines += ["", f"What the bank's {n} finished runs really took, read from their own logs (runs trained beside "
                  "other work took longer; the shares are what to read):", "",
                  "| kind of run | runs | median steps | CPU-hours | training | curve evaluations | full evaluations "
                  "| decoding | evaluation + decoding (pooled) | one run's least and most |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for a in actual:
            ph = a.get("phase_share") or {}
            cells = " | ".join("—" if ph.get(k) is None else f"{100 * ph[k]:.1f}%"
                               for k in ("train", "curve", "full", "generation"))
            lines.append(f"| {a['kind']} | {a['runs']} | {a['median_steps']:.0f} | {a['cpu_h']:.2f} | {cells} | "
                         f"{100 * a['eval_share']:.0f}% | {100 * a['eval_share_min']:.0f}–{100 * a['eval_share_max']:.0f}% |")
        lines += ["", f"In all, **{h:.1f} CPU-hours** so far, {100 * pooled:.0f}% of them evaluating and decoding."]
        if all(a.get("phase_share") for a in actual) and h:
            share = {k: sum(a["phase_share"][k] * a["cpu_h"] for a in actual) / h for k in ("curve", "full", "generation")}
            lines += ["The full evaluations (the whole held-out set's loss at step 0 and at the last step) take "
                      f"{100 * share['full']:.1f}%, the curve evaluations (its first rows, every `eval_every` steps, "
                      f"which the plateau rule reads) {100 * share['curve']:.1f}%, and decoding the held-out answers "
                      f"once at the end {100 * share['generation']:.1f}%."]
            n15 = steps_for_share(actual, 0.15)
            if n15 is not None:
                lines += [f"The share is set by the runs' length: at these evaluation sizes, evaluation plus decoding "
                          f"would fall to 15% of a run of about **{n15:.0f} steps** (training and curve evaluations "
                          "grow with the steps, the full evaluations and the decoding do not; "
                          "`performance.steps_for_share`)."]
    earlier = result.get("earlier") or []
    if earlier:
        lines += ["", "Earlier measurements of the same profile, on other machines: " + "; ".join(
            f"{e['date']}, {e['machine']}: {e['cpu_h']:.1f} CPU-hours" for e in earlier) + "."]
    return "\n".join(lines) + "\n"


def gpu_markdown(g: dict) -> str:
    """The GPU section: ``priorlib bench-gpu``'s results, one table per benchmark, every shape and batch."""
    env = g["environment"]
    peak = env.get("bf16_matmul_tflops")
    lines = ["## On a GPU, random weights of the models' shapes", "",
             f"Measured by `priorlib bench-gpu` on {env['date']}: {env['card']} (CUDA {env['cuda']}), torch "
             f"{env['torch']}, transformers {env['transformers']}, PEFT {env['peft']}"
             + (f"; an 8192^3 bf16 matrix product ran at {peak:.0f} TFLOP/s there" if peak else "") + ". "
             "No weights can travel to that machine, and a step's speed does not depend on the weights' values, so "
             "each model is built from its published configuration with random weights in bf16, on random token "
             "ids whose last 16 tokens are the answer. As on the CPU, the cases' steps alternate in one process and "
             "the first-step losses must agree (within 0.05) before anything is timed.", "",
             "Soft-prompt training step (20 prompt tokens; PEFT with bf16 weights under autocast):", "",
             "| model shape | batch | case | s/step (median) | tokens/s | vs PEFT bf16 | TFLOP/s"
             + (" | share of the matmul rate" if peak else "") + " | first-step loss gap |",
             "|---|---|---|---|---|---|---|" + ("---|" if peak else "") + "---|"]
    for r in g["train"]:
        for x in r["rows"]:
            lines.append(f"| {r['shape']} | {r['batch'][0]} x {r['batch'][1]} | {x['case']} | {x['s_per_step']:.4f} | "
                         f"{x['tokens_per_s']:,.0f} | {x['speedup_vs_peft_bf16']:.2f}x | {x['tflops']:.0f} | "
                         + (f"{x['tflops'] / peak:.0%} | " if peak else "") + f"{x['first_loss_gap']:.4f} |")
    lines += ["", "Deep prompts on the last 3 layers only (gradient of the prompts, no optimizer step, so every "
              "case sees the same prompts):", "",
              "| model shape | batch | case | s/step (median) | speed-up | largest loss gap to full backprop |",
              "|---|---|---|---|---|---|"]
    for r in g["deep"]:
        for x in r["rows"]:
            lines.append(f"| {r['shape']} | {r['batch'][0]} x {r['batch'][1]} | {x['case']} | {x['s_per_step']:.4f} | "
                         f"{x['speedup']:.2f}x | {x['max_loss_gap']:.4f} |")
    lines += ["", "Activation capture (bf16, rows of 32 x 256 tokens):", "",
              "| model shape | rows | case | s (median) | speed-up |", "|---|---|---|---|---|"]
    for r in g["capture"]:
        for x in r["rows"]:
            lines.append(f"| {r['shape']} | {r['texts']} | {x['case']} | {x['s']:.4f} | {x['speedup']:.2f}x |")
    lines += ["", _gpu_reading(g, peak)]
    failed = [f"{r['shape']} {k}: {v}" for sec in ("train", "deep", "capture") for r in g[sec]
              for k, v in r.get("failed", {}).items()] + [f"{e['section']} {e['args']}: {e['error']}" for e in g["errors"]]
    lines += ["", ("Cases that failed there: " + "; ".join(failed) + ".") if failed else
              "Every case ran; the raw figures are in `benchmarks/gpu.json`."]
    return "\n".join(lines) + "\n"


def _gpu_reading(g: dict, peak: float | None) -> str:
    """What the GPU tables say, from their numbers: how a step's time grows with the batch (launch-bound
    where 8x the tokens cost little more), and the best share of the matmul rate."""
    parts = []
    for shape in dict.fromkeys(r["shape"] for r in g["train"]):
        rs = sorted((r for r in g["train"] if r["shape"] == shape), key=lambda r: r["batch"][0])
        if len(rs) >= 2:
            a, b = rs[0], rs[-1]
            t = {r["batch"][0]: {x["case"]: x["s_per_step"] for x in r["rows"]} for r in (a, b)}
            case = next(iter(t[a["batch"][0]]))
            parts.append(f"for {shape}, {b['batch'][0] // a['batch'][0]}x the rows ({a['batch'][0]} to "
                         f"{b['batch'][0]}) cost {t[b['batch'][0]][case] / t[a['batch'][0]][case]:.1f}x the time "
                         f"of a {case} step")
    best = max((x for r in g["train"] for x in r["rows"]), key=lambda x: x["tflops"], default=None)
    out = ("Reading the tables: " + "; ".join(parts) + " (where 8x the tokens cost little more time, a step is bound by "
           "kernel launches and Python overhead, not by arithmetic).") if parts else ""
    if best is not None and peak:
        out += f" The fastest training case reaches {best['tflops'] / peak:.0%} of the matmul rate."
    return out + (" The capture baseline here is bf16 (on the CPU page it is fp32)." if g["capture"] else "")


def write_page(root: Path, results: dict | None = None, page_path: Path | None = None) -> str:
    """``book/performance.md`` from the benchmark's results and, if measured, the evidence's cost model
    (``benchmarks/costs.json``, :mod:`priorlib.compendium.costs`): each command rewrites the page whole."""
    from priorlib.checkpoint import atomic_write_text
    bench_json, costs_json = root / "benchmarks" / "results.json", root / "benchmarks" / "costs.json"
    gpu_json = root / "benchmarks" / "gpu.json"
    if results is None:
        results = json.loads(bench_json.read_text()) if bench_json.exists() else None
    page = bench_markdown(results) if results else "# Performance\n\n`priorlib bench` has not been run yet.\n"
    if gpu_json.exists():
        page += "\n" + gpu_markdown(json.loads(gpu_json.read_text()))
    if costs_json.exists():
        c = json.loads(costs_json.read_text())
        if "projection" in c:
            page += "\n" + costs_markdown(c)
    atomic_write_text(page_path or root / "book" / "performance.md", page)
    return page


