"""Where do the nine priors put 20 prompt vectors, relative to SmolLM2-135M's token embeddings?

    .venv/bin/python benchmarks/prior_table.py [--model smollm2-135m] [--n-tokens 20] [--seed 0]

Prints a markdown table: per prior, the medians over the prompt vectors of the nearest-neighbour
L2 / cosine distance to the vocabulary, the Mahalanobis distance under the vocabulary's Gaussian
fit, the log-density percentile, and the share inside the fit's 95% region; the last row is the
vocabulary's own baseline (a seeded subsample of rows, each against all *other* rows).

Interpolation mixes the fits of two halves of the vocabulary (ids < V/2: earlier BPE merges, roughly
the frequent tokens; ids >= V/2: later, rarer merges) with alpha = 0.5.
"""
from __future__ import annotations

import argparse
import time

import torch

from priorlib.models import load_model
from priorlib.priors import Reference
from priorlib.priors.diagnostics import prior_diagnostics

TEXT = "Answer the question based on the context"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n-tokens", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vae-epochs", type=int, default=10)
    args = ap.parse_args()

    model, tok = load_model(args.model)
    ref = Reference.from_embeddings(model, tok)
    half = len(ref) // 2
    first = ref.subset(torch.arange(half), "ids < V/2")
    second = ref.subset(torch.arange(half, len(ref)), "ids >= V/2")
    priors = [
        ("isotropic", {}), ("xavier", {}), ("fitted-gaussian", {}), ("exclusion", {}),
        ("interpolation", {"other": second, "alpha": 0.5}), ("vae", {"epochs": args.vae_epochs}),
        ("vocab-sample", {}), ("text", {"text": TEXT}), ("low-density", {}),
    ]
    print(f"reference: {args.model} token embeddings {tuple(ref.vectors.shape)}, n_tokens={args.n_tokens}, "
          f"seed={args.seed}\n")
    print("| prior | median NN L2 | median NN cos dist | median Mahalanobis | median log-density pct | "
          "share in 95% HDR | extras | s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, params in priors:
        t0 = time.perf_counter()
        reference = first if name == "interpolation" else ref  # always measured against the whole vocabulary
        d = prior_diagnostics(name, reference, n=args.n_tokens, seed=args.seed, against=ref, **params)
        baseline = d["baseline"]
        ex = d["extras"]
        extras = {
            "isotropic": lambda: f"sigma / rms ref std = {ex['sigma_over_ref_std']:.3f}",
            "exclusion": lambda: f"acceptance {ex['acceptance_rate']:.3f} (analytic {ex['acceptance_rate_analytic']:.3f})",
            "vae": lambda: (f"active units {ex['active_units']}/{ex['latent_dim']}, var ratio "
                            f"{ex['variance_ratio']:.3f}, recon mse {ex['recon_mse']:.3f}"),
            "low-density": lambda: f"kNN threshold {ex['threshold']:.3f}, acceptance {ex['acceptance_rate']:.3f}",
        }.get(name, lambda: "")()
        print(f"| {name} | {d['median_nn_l2']:.3f} | {d['median_nn_cos']:.3f} | {d['median_mahalanobis']:.1f} | "
              f"{d['median_logdensity_percentile']:.3f} | {d['share_in_hdr']:.2f} | {extras} | "
              f"{time.perf_counter() - t0:.1f} |", flush=True)
    b = baseline
    print(f"| reference rows (baseline, n={b['n']}) | {b['median_nn_l2']:.3f} | {b['median_nn_cos']:.3f} | "
          f"{b['median_mahalanobis']:.1f} | 0.5 | {b['share_in_hdr']:.2f} | self excluded | |")
    print(f"\nHDR: Mahalanobis^2 <= chi2_{ref.dim} 0.95 quantile (radius {d['hdr_radius']:.1f}); "
          f"the Gaussian fit of the vocabulary has condition number {ref.fit().condition_number():.0f}.")


if __name__ == "__main__":
    main()
