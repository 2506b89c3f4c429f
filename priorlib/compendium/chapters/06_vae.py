"""Chapter 06 (paper section 4.6): the VAE prior and its collapse.

    S = chapter("06_vae")
    sweep = S.vae_sweep(reference, betas=(0.25, 1, 4, 16), var_matches=(0, 1, 10))
    S.collapse_findings(sweep)

:func:`vae_sweep` trains the VAE prior on last-layer-input activations of MATH over a grid of KL weights
and variance-matching penalties and reports the collapse diagnostics; the VAE arms train deep prompts
from its samples. The arms, the setup and the quality tables are shared with chapter 05
(:mod:`priorlib.compendium.arms`) and re-exported here, so the notebook needs this module only.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from priorlib.compendium import experiments
from priorlib.compendium.arms import (ARM_TITLES, ARMS, COLLAPSE_ACTIVE_SHARE, COLLAPSE_VARIANCE_RATIO,  # noqa: F401
                                      VAE_EPOCHS, Setup, arm_means, arm_of, collapse_kind, deep_key,
                                      domain_references, is_collapsed, load_model, model_note, quality, rows,
                                      same_as, train_runs)
from priorlib.compendium.margins import margin
from priorlib.config import TrainConfig
from priorlib.compendium.verdicts import Outcome, Verdict, outcome_of

STEM = "06_vae"


def vae_sweep(reference, betas, var_matches, *, epochs: int | str = VAE_EPOCHS, seed: int = 0) -> pd.DataFrame:
    """Train (or load from the VAE cache) one VAE per ``(beta, var_match)`` on ``reference`` and
    measure collapse: active latent units (KL_j > 0.01 nats), decoded-sample / data variance,
    reconstruction error (standardised units) and the total KL."""
    from priorlib.priors.vae import VAEParams, load_or_train_vae, vae_diagnostics
    out = []
    capacity: dict[int, float] = {}
    for beta in betas:
        for vm in var_matches:
            p = VAEParams(beta=float(beta), var_match=float(vm), epochs=int(epochs))
            vae = load_or_train_vae(reference, p)
            d = vae_diagnostics(vae, reference.vectors, torch.Generator().manual_seed(seed))
            if d["latent_dim"] not in capacity:
                capacity[d["latent_dim"]] = linear_capacity(reference.vectors, d["latent_dim"])
            out.append({"beta": float(beta), "var_match": float(vm), "active_units": d["active_units"],
                        "linear_capacity": capacity[d["latent_dim"]],
                        "latent_dim": d["latent_dim"], "variance_ratio": d["variance_ratio"],
                        "recon_mse": d["recon_mse"], "kl_total": float(d["kl_per_dim"].sum()),
                        "collapsed": is_collapsed(d["active_units"], d["latent_dim"], d["variance_ratio"]),
                        "collapse": collapse_kind(d["active_units"], d["latent_dim"], d["variance_ratio"])})
    return pd.DataFrame(out)


def linear_capacity(vectors: torch.Tensor, k: int) -> float:
    """The share of the rows' total variance in their top ``k`` principal components: what a linear decoder
    from ``k`` latents could keep at most. Beside a VAE's variance ratio it says whether the collapse rule's
    threshold is within reach of that latent width at all (:func:`collapse_verdict`)."""
    x = vectors.double()
    ev = torch.linalg.eigvalsh(torch.cov(x.T)).flip(0).clamp_min(0)  # [d], largest first
    return float(ev[:k].sum() / ev.sum()) if float(ev.sum()) > 0 else float("nan")


def collapse_verdict(findings: dict) -> Verdict:
    """*The VAE prior collapsed* (§4.6) from the plain VAE (β = 1, no penalty): the diagnostic rule of
    :func:`collapse_kind`. When the plain VAE counts as collapsed by its samples' variance alone and a
    linear decoder of its latent width could not keep :data:`COLLAPSE_VARIANCE_RATIO` of the variance either
    (:func:`linear_capacity`), the threshold is out of reach of the architecture, and the verdict is
    inconclusive rather than agrees."""
    claim = "The VAE prior collapsed"
    plain = findings["plain"]
    if plain is None:
        return Verdict(claim, "the sweep lacks β = 1, γ = 0", Outcome.INCONCLUSIVE, claim_id="vae-collapses")
    cap = plain.get("linear_capacity", float("nan"))
    measured = (f"plain VAE (β = 1, no penalty): {plain['active_units']} of {plain['latent_dim']} latent units active, "
                f"decoded samples keep {plain['variance_ratio']:.2f} of the data's variance"
                + (f" (its top {plain['latent_dim']} principal components hold {cap:.2f}: what a linear decoder of "
                   f"that width could keep)" if cap == cap else "")
                + f"; {findings['n_collapsed']} of {findings['n_settings']} (β, γ) settings collapse by our rule "
                f"(active share < {COLLAPSE_ACTIVE_SHARE} or variance ratio < {COLLAPSE_VARIANCE_RATIO})")
    outcome = outcome_of(bool(plain["collapsed"]))
    if plain.get("collapse") == "samples" and cap == cap and cap < COLLAPSE_VARIANCE_RATIO:
        outcome = Outcome.INCONCLUSIVE
        measured += ("; a linear decoder of this width could not reach the variance threshold either, so the "
                     "samples' low variance does not show a collapse")
    return Verdict(claim, measured, outcome, claim_id="vae-collapses")


def kl_settings(s: Setup) -> list[tuple[float, float]]:
    """The VAEs whose KL profile is drawn: every swept β without the penalty, and β = 1 with the largest γ."""
    out = [(b, 0.0) for b in s.sweep_betas if 0.0 in s.sweep_var_match]
    if 1.0 in s.sweep_betas and max(s.sweep_var_match) > 0:
        out.append((1.0, max(s.sweep_var_match)))
    return out


def kl_profiles(reference, settings, *, epochs: int | str = VAE_EPOCHS, seed: int = 0) -> dict:
    """``{"β=…, γ=…": KL per latent unit [latent]}`` for a few (beta, var_match) settings (cached VAEs)."""
    from priorlib.priors.vae import VAEParams, load_or_train_vae, vae_diagnostics
    out = {}
    for beta, vm in settings:
        vae = load_or_train_vae(reference, VAEParams(beta=float(beta), var_match=float(vm), epochs=int(epochs)))
        d = vae_diagnostics(vae, reference.vectors, torch.Generator().manual_seed(seed))
        out[f"β={beta:g}, γ={vm:g}"] = d["kl_per_dim"]
    return out


def penalised_findings(sweep: pd.DataFrame) -> dict | None:
    """The settings at the largest variance penalty γ (``None`` when the sweep has no penalty): how many
    collapse, and the range of their decoded variance ratio and active latent share."""
    top = float(sweep["var_match"].max()) if len(sweep) else 0.0
    pen = sweep[sweep["var_match"] == top]
    if top <= 0 or not len(pen):
        return None
    share = pen["active_units"] / pen["latent_dim"]
    return {"var_match": top, "n": int(len(pen)), "n_collapsed": int(pen["collapsed"].sum()),
            "betas": [float(b) for b in pen["beta"]],
            "variance_ratio": [float(pen["variance_ratio"].min()), float(pen["variance_ratio"].max())],
            "active_share": [float(share.min()), float(share.max())]}


def collapse_findings(sweep: pd.DataFrame) -> dict:
    """Which settings collapse, and the numbers of the plain VAE (beta = 1, no penalty)."""
    plain = sweep[(sweep["beta"] == 1.0) & (sweep["var_match"] == 0.0)]
    plain = plain.iloc[0].to_dict() if len(plain) else None
    nopen = sweep[sweep["var_match"] == 0.0].sort_values("beta")
    first_beta = nopen[nopen["collapsed"]]["beta"].min() if nopen["collapsed"].any() else None
    return {"n_settings": int(len(sweep)), "n_collapsed": int(sweep["collapsed"].sum()),
            "plain": plain, "penalised": penalised_findings(sweep), "smallest_collapsing_beta_without_penalty":
                None if first_beta is None or (isinstance(first_beta, float) and math.isnan(first_beta))
                else float(first_beta),
            "collapsed_settings": [(float(b), float(v)) for b, v in
                                   sweep[sweep["collapsed"]][["beta", "var_match"]].itertuples(index=False)],
            "by_beta_without_penalty": {float(r["beta"]): r.get("collapse", "collapsed" if r["collapsed"] else "none")
                                        for _, r in nopen.iterrows()}}


def describe_collapse(findings: dict) -> str:
    """One sentence: which settings collapse, and how, as β grows without the penalty."""
    parts = [f"β = {b:g}: {'no collapse' if k == 'none' else k + ' collapse'}"
             for b, k in findings["by_beta_without_penalty"].items()]
    settings = ", ".join(f"({b:g}, {v:g})" for b, v in findings["collapsed_settings"]) or "none"
    return (f"{findings['n_collapsed']} of {findings['n_settings']} (β, γ) settings collapse: {settings}. "
            "Without the variance penalty (γ = 0): " + "; ".join(parts) + ".")


def sample_spread(x: torch.Tensor) -> float:
    """Median pairwise L2 distance between the rows of ``x`` (how varied a set of prompt vectors is)."""
    d = torch.cdist(x.float(), x.float())
    iu = torch.triu_indices(len(x), len(x), 1)
    return float(d[iu[0], iu[1]].median())


def vae_placement(runs, ref, key: str) -> pd.DataFrame:
    """:func:`experiments.placement_rows` against the MATH reference plus the spread of the vectors
    relative to the reference rows' own spread (a collapsed prior draws near-identical vectors)."""
    place = experiments.placement_rows(runs, ref, key=key, fields=("lr", "seed"))
    place.insert(0, "arm", [arm_of(r.config) for r in runs for _ in (0, 1)])
    g = torch.Generator().manual_seed(0)
    ref_spread = sample_spread(ref.vectors[torch.randperm(len(ref), generator=g)[:512]])
    spreads = []
    for r in runs:
        ck = r.checkpoints()
        spreads += [sample_spread(ck[0][1][key]) / ref_spread, sample_spread(ck[-1][1][key]) / ref_spread]
    place["spread_vs_reference"] = spreads
    return place


def penalty_verdict(pen: dict | None) -> Verdict:
    """The paper's "variance constraints have not been sufficient" (§4.6): agrees when every (β, γ) setting at
    the largest penalty γ collapses (:func:`penalised_findings`), contradicts when one keeps its variance."""
    claim = "Constraining the VAE's variance was not enough to prevent the collapse"
    if pen is None:
        return Verdict(claim, "the sweep has no variance penalty (γ > 0)", Outcome.INCONCLUSIVE,
                       claim_id="variance-penalty-insufficient")
    return Verdict(claim, f"at γ = {pen['var_match']:g} (β = {', '.join(f'{b:g}' for b in pen['betas'])}): "
                          f"{pen['n_collapsed']} of {pen['n']} settings collapse; decoded variance ratio "
                          f"{pen['variance_ratio'][0]:.2f}–{pen['variance_ratio'][1]:.2f}, active latent share "
                          f"{pen['active_share'][0]:.2f}–{pen['active_share'][1]:.2f} (collapsed: active share < "
                          f"{COLLAPSE_ACTIVE_SHARE} or variance ratio < {COLLAPSE_VARIANCE_RATIO})",
                   outcome_of(pen["n_collapsed"] == pen["n"]), claim_id="variance-penalty-insufficient")


def verdict(findings: dict, df: pd.DataFrame) -> tuple[list[Verdict], dict]:
    """The closing verdicts of notebook 06 and the numbers behind them: the plain VAE's collapse (the
    diagnostic rule of :func:`collapse_kind`), whether the variance penalty prevented it
    (:func:`penalty_verdict`), and, per VAE arm, "the same final quality as the fitted
    Gaussian" by :func:`same_as` (TOST on final validation loss within ``margins.MARGINS``, plateau rule)."""
    loss = arm_means(df, "final_val_loss")
    acc = arm_means(df, "final_accuracy") if "final_accuracy" in df else {}
    rows = [collapse_verdict(findings)]
    rows.append(penalty_verdict(findings.get("penalised")))
    tests = {}
    if "fitted-gaussian" in loss:
        for a in [a for a in loss if a.startswith("vae")]:
            same = tests[a] = same_as(df, a, "fitted-gaussian")
            rows.append(Verdict(
                "Prompts from the VAE prior reach the quality of those from the fitted Gaussian",
                f"{a}: val loss {loss[a][0]:.3f} ± {loss[a][1]:.3f}"
                + (f", accuracy {acc[a][0]:.1f} ± {acc[a][1]:.1f}%" if a in acc else "")
                + f" vs fitted-gaussian {loss['fitted-gaussian'][0]:.3f} ± {loss['fitted-gaussian'][1]:.3f}"
                + (f", {acc['fitted-gaussian'][0]:.1f} ± {acc['fitted-gaussian'][1]:.1f}%" if acc else "")
                + f"; {a} minus fitted-gaussian (TOST, margin ±{margin('final_val_loss'):g} nats): {same.reason}",
                same.outcome, claim_id="vae-same-quality"))
    return rows, {"final_val_loss": loss, "final_accuracy": acc,
                  "same_as_fitted_gaussian": {a: {"estimate": t.estimate, "ci": [t.ci_low, t.ci_high],
                                                  "outcome": t.outcome.value} for a, t in tests.items()}}


def settings(profile: str, *, model=None, priors=None, learning_rates=None, seeds=None, steps=None, batch_size=None,
             n_tokens=None, deep_layers=None, max_length=None, eval_size=None, vae_epochs=None, sweep_betas=None, sweep_var_match=None, out_dir=None) -> Setup:
    """This chapter's settings (through :func:`priorlib.compendium.setup.setup`): ``None`` is the profile's value."""
    from priorlib.compendium import arms
    return arms.setup("06_vae", profile, model=model, priors=priors, learning_rates=learning_rates, seeds=seeds,
                      steps=steps, batch_size=batch_size, n_tokens=n_tokens, deep_layers=deep_layers,
                      max_length=max_length, eval_size=eval_size, vae_epochs=vae_epochs, sweep_betas=sweep_betas, sweep_var_match=sweep_var_match, out_dir=out_dir)


def plan(profile: str = "cpu") -> list[TrainConfig]:
    """Every config the notebook trains in ``profile``, in the order it asks for them: the grid of its default
    settings (arm x learning rate x seed, :func:`priorlib.compendium.arms.plan`), which ``train_runs`` trains."""
    from priorlib.compendium import arms
    return arms.plan(STEM, profile)


# --------------------------------------------------------------------------------------------- captions
def _active_threshold() -> float:
    """The KL (nats) above which :func:`priorlib.priors.vae.vae_diagnostics` counts a latent unit active."""
    import inspect
    from priorlib.priors.vae import vae_diagnostics
    return float(inspect.signature(vae_diagnostics).parameters["active_threshold"].default)


def sweep_caption(sweep: pd.DataFrame, *, n_rows: int, layer: int, dim: int, epochs: int | str) -> str:
    """Figure "VAE sweep" (:func:`~priorlib.compendium.plots.domains.vae_sweep_heatmaps` of ``sweep``): the three
    heatmaps, and how many settings collapse, the plain VAE's numbers and the largest penalty's variance ratio.

        sweep_caption(sweep, n_rows=400, layer=3, dim=64, epochs=30)  # "... 2 of 4 (β, γ) settings collapse ..."
    """
    f = collapse_findings(sweep)
    out = (f"Three heatmaps over the KL weight β (rows) and the variance-matching penalty weight γ (columns) of "
           f"{f['n_settings']} VAEs trained for {epochs} epochs on {n_rows} MATH activation rows (input of layer "
           f"{layer}, d = {dim}): active latent units (KL > {_active_threshold():g} nats), decoded-sample variance / "
           f"data variance, and reconstruction MSE (standardised units²); a collapsed cell names its kind. "
           f"{f['n_collapsed']} of {f['n_settings']} (β, γ) settings collapse")
    plain = f["plain"]
    if plain is not None:
        out += (f"; the plain VAE (β = 1, γ = 0) keeps {int(plain['active_units'])} of {int(plain['latent_dim'])} "
                f"latent units active and {plain['variance_ratio']:.2f} of the data's variance")
    pen = f["penalised"]
    if pen is not None:
        lo, hi = pen["variance_ratio"]
        out += (f"; at γ = {pen['var_match']:g}, {pen['n_collapsed']} of {pen['n']} collapse, variance ratio "
                + (f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}–{hi:.2f}"))
    return out + "."


def kl_caption(kls: dict) -> str:
    """Figure "KL per latent unit" (:func:`~priorlib.compendium.plots.domains.kl_per_unit` of ``kls``, as
    :func:`kl_profiles` returns it): the bars, the threshold line, and how many units each VAE keeps active."""
    thr = _active_threshold()
    active = "; ".join(f"{lab}: {int((np.asarray(v, dtype=float) > thr).sum())} of {len(v)}" for lab, v in kls.items())
    return (f"Mean KL to the prior per latent unit (nats, symlog axis) of {len(kls)} VAEs (one bar colour each), "
            f"units sorted by KL within each VAE; dashed: the {thr:g}-nat activity threshold. Units above it: "
            f"{active}.")


def _c05():
    from priorlib.compendium import chapter
    return chapter("05_math_interpolation")


def accuracy_caption(df: pd.DataFrame, steps: int, baseline: str = "fitted-gaussian") -> str:
    """Figure "held-out MATH accuracy": chapter 05's caption of the same bars (the arms here are VAE ones)."""
    return _c05().accuracy_caption(df, steps, baseline)


def val_loss_caption(df: pd.DataFrame, steps: int, baseline: str = "fitted-gaussian") -> str:
    """Figure "held-out MATH loss": chapter 05's caption of the same bars, differences to ``baseline``."""
    return _c05().val_loss_caption(df, steps, baseline)


def training_loss_caption(runs, smooth: int = 5, arm=arm_of) -> str:
    """Figure "training loss on MATH": chapter 05's caption of the same curves."""
    return _c05().training_loss_caption(runs, smooth, arm)
