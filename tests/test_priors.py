"""The prior registry and the nine priors, on small synthetic references (fixed seeds, d <= 16)."""
import math

import pytest
import torch
from scipy.stats import chi2

from priorlib.metrics.placement import nearest_neighbours
from priorlib.priors import (PRIORS, Reference, exclusion_acceptance_rate, get_prior, parse_params,
                             sample_prior)
from priorlib.priors.exclusion import (exclusion_radius, exclusion_radius_rejection_rate, exclusion_radius_sample,
                                      exclusion_sample)
from priorlib.priors.lowdensity import LowDensityParams, low_density_sample
from priorlib.priors.vae import VAEParams, load_or_train_vae, train_vae, vae_diagnostics
from priorlib.stats import Gaussian

D = 8
NINE = ["isotropic", "xavier", "fitted-gaussian", "exclusion", "interpolation", "vae", "vocab-sample", "text",
        "low-density"]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _gaussian_ref(n=2000, d=D, seed=0, shift=0.0, name="a"):
    g = gen(seed)
    mix = torch.randn(d, d, generator=g) / math.sqrt(d) + torch.eye(d)
    rows = torch.randn(n, d, generator=g) @ mix + shift
    return Reference(rows, name, embed_text=lambda text: torch.stack(
        [torch.full((d,), float(len(w))) for w in text.split()]))


@pytest.fixture(scope="module")
def ref():
    return _gaussian_ref()


@pytest.fixture(scope="module")
def ref_b():
    return _gaussian_ref(n=1000, seed=1, shift=5.0, name="b")


def _params(name, ref_b):
    return {"interpolation": {"other": ref_b}, "text": {"text": "one three fives"},
            "vae": {"epochs": 2, "hidden_dim": 32, "cache": False}}.get(name, {})


# ------------------------------------------------------------------ registry & validation

def test_registry_has_the_nine_and_the_posterior_prior():
    # the paper's nine, "exclusion-radius" (registered beside the paper's exclusion rule) and "posterior"
    # (trained prompts of one task as the prior of another, notebook 08)
    assert list(PRIORS) == NINE[:4] + ["exclusion-radius"] + NINE[4:] + ["posterior"]


@pytest.mark.parametrize("name", NINE + ["exclusion-radius"])
def test_shape_dtype_and_determinism(name, ref, ref_b):
    p = _params(name, ref_b)
    a = sample_prior(name, 12, ref, gen(0), **p)
    b = sample_prior(name, 12, ref, gen(0), **p)
    assert a.shape == (12, D) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b)
    if name != "text":  # text ignores the generator by design
        assert not torch.equal(a, sample_prior(name, 12, ref, gen(1), **p))


def test_unknown_prior_lists_choices(ref):
    with pytest.raises(ValueError, match="unknown prior 'gauss'.*isotropic.*low-density"):
        sample_prior("gauss", 4, ref, gen())
    with pytest.raises(ValueError, match="unknown prior"):
        get_prior("nope")


@pytest.mark.parametrize("name,params,match", [
    ("isotropic", {"sigma": -0.1}, "sigma must be > 0"),
    ("isotropic", {"sigmaa": 0.1}, "no parameter"),
    ("exclusion", {"c": 1.0}, "c must be > 1"),
    ("exclusion", {"c": 0.5}, "c must be > 1"),
    ("exclusion-radius", {"q": 1.0}, r"q must be in \(0, 1\)"),
    ("exclusion-radius", {"q": 0.0}, r"q must be in \(0, 1\)"),
    ("exclusion-radius", {"c": 0.0}, "c must be > 0"),
    ("interpolation", {"alpha": 1.5}, r"alpha must be in \[0, 1\]"),
    ("interpolation", {"alpha": -0.1}, r"alpha must be in \[0, 1\]"),
    ("interpolation", {"alpha": "gauss"}, "alpha must be"),
    ("xavier", {"mode": "kaiming"}, "mode must be"),
    ("fitted-gaussian", {"shrinkage": 2.0}, "shrinkage"),
    ("vae", {"beta": -1.0}, "beta must be >= 0"),
    ("vocab-sample", {"top_k": 0}, "top_k must be >= 1"),
    ("low-density", {"quantile": 1.0}, "quantile"),
])
def test_param_validation(ref, name, params, match):
    with pytest.raises(ValueError, match=match):
        sample_prior(name, 4, ref, gen(), **params)


def test_parse_params_from_strings():
    assert parse_params("isotropic", {"sigma": "0.05"}).sigma == 0.05
    assert parse_params("interpolation", {"alpha": "uniform"}).alpha == "uniform"
    assert parse_params("interpolation", {"alpha": "0.25"}).alpha == 0.25
    assert parse_params("vocab-sample", {"top_k": "none"}).top_k is None
    assert parse_params("vocab-sample", {"top_k": "100"}).top_k == 100
    assert parse_params("xavier", {"mode": "normal"}).mode == "normal"
    assert parse_params("vae", {"cache": "false", "epochs": "3"}).cache is False
    assert parse_params("fitted-gaussian", {"shrinkage": "ledoit-wolf"}).shrinkage == "ledoit-wolf"
    assert parse_params("fitted-gaussian", {"shrinkage": "0.1"}).shrinkage == 0.1
    with pytest.raises(ValueError, match="no parameter 'sigmaa'"):
        parse_params("isotropic", {"sigmaa": "1"})
    with pytest.raises(ValueError, match="epochs must be int"):
        parse_params("vae", {"epochs": "many"})
    with pytest.raises(ValueError, match="mode must be one of"):
        parse_params("xavier", {"mode": "he"})
    with pytest.raises(ValueError, match="c must be > 1"):
        parse_params("exclusion", {"c": "1"})
    assert parse_params("exclusion-radius", {"q": "0.9", "c": "1.5"}) == get_prior("exclusion-radius").params(0.9, 1.5)
    with pytest.raises(ValueError, match="cannot be given as a string"):
        parse_params("interpolation", {"other": "b"})


def test_params_dataclass_is_accepted(ref):
    p = parse_params("isotropic", {"sigma": "0.5"})
    a = sample_prior("isotropic", 5, ref, gen(3), params=p)
    assert torch.equal(a, sample_prior("isotropic", 5, ref, gen(3), sigma=0.5))
    with pytest.raises(ValueError, match="not both"):
        sample_prior("isotropic", 5, ref, gen(3), params=p, sigma=0.5)


# ------------------------------------------------------------------ simple priors

def test_isotropic_and_xavier_scales(ref):
    x = sample_prior("isotropic", 5000, ref, gen(), sigma=0.3)
    assert x.mean().abs() < 0.01 and abs(x.std() - 0.3) < 0.01  # 40k values: SE ~ 0.0015
    n, d = 20, 580  # fans for n=20 prompt tokens in d=580: a = sqrt(6 / 600) = 0.1
    big = Reference(torch.randn(30, d), "wide")
    u = sample_prior("xavier", n, big, gen())
    assert u.abs().max() <= 0.1 + 1e-6 and u.abs().max() > 0.099
    v = sample_prior("xavier", n, big, gen(), mode="normal")
    assert abs(v.std() - math.sqrt(2 / 600)) < 0.002  # 11.6k values: SE ~ 0.0004


def test_fitted_gaussian_recovers_reference_fit(ref):
    fit = ref.fit()
    x = sample_prior("fitted-gaussian", 20_000, ref, gen(), scale=2.0).double()
    assert (x.mean(0) - fit.mean).abs().max() < 0.06  # std <= ~2.5 -> SE ~ 0.02
    assert (torch.cov(x.T) - 4 * fit.cov).abs().max() < 0.25  # 4 Sigma has entries up to ~6


# ------------------------------------------------------------------ exclusion

def test_exclusion_draws_sit_outside_the_fit(ref):
    fit = ref.fit()
    inside = fit.mahalanobis(sample_prior("fitted-gaussian", 500, ref, gen()))
    outside = fit.mahalanobis(sample_prior("exclusion", 500, ref, gen(), c=5.0))
    assert outside.median() > 1.8 * inside.median()  # sqrt(5) = 2.24 in expectation
    assert (outside > inside.median()).float().mean() > 0.95


@pytest.mark.parametrize("d,c", [(2, 1.5), (4, 2.0)])
def test_exclusion_acceptance_rate_matches_analytic(d, c):
    gauss = Gaussian(torch.zeros(d), torch.eye(d))
    expected = exclusion_acceptance_rate(c, d)
    assert expected == pytest.approx(1 - c ** (-d / 2))
    x, stats = exclusion_sample(gauss, 3000, gen(), c, 10**6)
    # >= 4500 proposals: binomial SE <= 0.007
    assert stats["acceptance_rate"] == pytest.approx(expected, abs=0.025)
    # the accepted density is (N(0, cI) - c^(-d/2) N(0, I)) / rate, so E[m^2] = d (c - c^(-d/2)) / rate
    m2 = gauss.mahalanobis(x).pow(2).mean()
    assert float(m2) == pytest.approx(d * (c - c ** (-d / 2)) / expected, rel=0.06)


def test_exclusion_budget(ref):
    with pytest.raises(RuntimeError, match="max_draws"):
        sample_prior("exclusion", 200, ref, gen(), c=1.0001, max_draws=50)
    with pytest.raises(RuntimeError, match="max_draws"):
        sample_prior("exclusion-radius", 200, ref, gen(), q=0.999, max_draws=64)


def test_paper_exclusion_rule_accepts_every_draw_in_576_dims():
    """The finding: at d = 576, c = 5, 1 - c^(-d/2) is 1 in float64 and no draw is ever rejected."""
    d = 576
    assert exclusion_acceptance_rate(5.0, d) == 1.0
    _, stats = exclusion_sample(Gaussian(torch.zeros(d), torch.eye(d)), 2000, gen(), 5.0, 10**6)
    assert stats["acceptance_rate"] == 1.0 and stats["accepted"] == stats["drawn"] >= 2000
    # the broad Gaussian itself already has (almost) no mass inside the fit's 95% region
    assert exclusion_radius_rejection_rate(0.95, 5.0, d) < 1e-30


@pytest.mark.parametrize("d,q,c", [(576, 0.95, 1.0), (576, 0.5, 1.05), (4, 0.95, 1.0), (4, 0.8, 2.0)])
def test_exclusion_radius_rejects_at_the_predicted_rate(d, q, c):
    gauss = Gaussian(torch.zeros(d), torch.eye(d))
    r = exclusion_radius(q, d)
    assert r ** 2 == pytest.approx(float(chi2.ppf(q, d)), rel=1e-12)
    predicted = exclusion_radius_rejection_rate(q, c, d)
    assert predicted == pytest.approx(float(chi2.cdf(r ** 2 / c, d)), rel=1e-12)
    if c == 1.0:
        assert predicted == pytest.approx(q, abs=1e-12)
    x, stats = exclusion_radius_sample(gauss, 400, gen(), q, c, 10**6)
    assert x.shape == (400, d) and (gauss.mahalanobis(x) >= r).all()  # every kept draw is outside
    assert stats["radius"] == r and stats["rejection_rate_predicted"] == predicted
    assert stats["rejected"] == round(stats["rejection_rate"] * stats["drawn"])
    # binomial tolerance: 4 standard errors of a rate over stats["drawn"] proposals (here >= 750)
    assert stats["drawn"] >= 750
    tol = 4 * math.sqrt(predicted * (1 - predicted) / stats["drawn"])
    assert abs(stats["rejection_rate"] - predicted) <= tol


def test_exclusion_radius_on_a_correlated_reference(ref):
    fit = ref.fit()
    x = sample_prior("exclusion-radius", 300, ref, gen(), q=0.9)
    assert (fit.mahalanobis(x) >= exclusion_radius(0.9, D) - 1e-4).all()  # float32 rounding of the draws
    assert torch.equal(x, sample_prior("exclusion-radius", 300, ref, gen(), q=0.9))


# ------------------------------------------------------------------ interpolation

def test_interpolation_between_fits():
    d = 8
    mu_a, mu_b = torch.zeros(d), torch.full((d,), 10.0 / math.sqrt(d))  # |mu_b - mu_a| = 10
    a = Reference(torch.randn(3000, d, generator=gen(1)) * 0.3 + mu_a, "A")
    b = Reference(torch.randn(3000, d, generator=gen(2)) * 0.3 + mu_b, "B")
    x = sample_prior("interpolation", 4000, a, gen(), other=b, alpha=0.3).double()
    target = 0.3 * a.fit().mean + 0.7 * b.fit().mean
    assert (x.mean(0) - target).abs().max() < 0.03  # std ~ 0.3 * 0.76 -> SE ~ 0.004
    u = sample_prior("interpolation", 2000, a, gen(), other=b, alpha="uniform").double()
    axis = (b.fit().mean - a.fit().mean)
    t = (u - a.fit().mean) @ axis / (axis @ axis)  # 0 at mu_A, 1 at mu_B; noise std ~ 0.03
    assert t.min() > -0.15 and t.max() < 1.15
    assert t.min() < 0.05 and t.max() > 0.95 and abs(float(t.mean()) - 0.5) < 0.03
    with pytest.raises(ValueError, match="other=<Reference>"):
        sample_prior("interpolation", 4, a, gen())


# ------------------------------------------------------------------ vocab-sample and text

def test_vocab_sample_returns_distinct_rows(ref):
    x = sample_prior("vocab-sample", 50, ref, gen())
    dist, idx = nearest_neighbours(x, ref.vectors)
    assert dist.max() < 1e-3  # every draw is a reference row
    assert torch.equal(x, ref.vectors[idx[:, 0]])
    assert idx.unique().numel() == 50  # distinct


def test_vocab_sample_top_k_and_errors():
    rows = torch.randn(100, 4, generator=gen())
    freq = torch.arange(100, 0, -1).float()  # row i has frequency 100 - i: top 30 = rows 0..29
    r = Reference(rows, "v", frequencies=freq)
    x = sample_prior("vocab-sample", 20, r, gen(), top_k=30)
    _, idx = nearest_neighbours(x, rows)
    assert idx.max() < 30 and idx.unique().numel() == 20
    with pytest.raises(ValueError, match="only 30 are available"):
        sample_prior("vocab-sample", 31, r, gen(), top_k=30)
    with pytest.raises(ValueError, match="only 100 are available"):
        sample_prior("vocab-sample", 101, r, gen())
    with pytest.raises(ValueError, match="needs token frequencies"):
        sample_prior("vocab-sample", 5, Reference(rows, "nofreq"), gen(), top_k=10)


def test_text_repeats_and_cuts(ref):
    x = sample_prior("text", 7, ref, gen(), text="a bb ccc")  # fake embedding: word length
    assert x[:, 0].tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert sample_prior("text", 2, ref, gen(), text="a bb ccc")[:, 0].tolist() == [1, 2]
    with pytest.raises(ValueError, match="give the text"):
        sample_prior("text", 3, ref, gen())
    with pytest.raises(ValueError, match="no embed_text"):
        sample_prior("text", 3, Reference(ref.vectors, "bare"), gen(), text="hi")


# ------------------------------------------------------------------ VAE

@pytest.fixture(scope="module")
def two_clusters():
    """Two clusters at x_0 = +-4 on a 2-d structure (x_0, x_1) linearly embedded in d = 8 (+ small noise)."""
    g = gen(5)
    side = torch.where(torch.rand(1200, generator=g) < 0.5, 1.0, -1.0)
    z = torch.stack([4 * side + 0.3 * torch.randn(1200, generator=g), torch.randn(1200, generator=g)], 1)
    rest = z @ torch.randn(2, D - 2, generator=g) + 0.05 * torch.randn(1200, D - 2, generator=g)
    return Reference(torch.cat([z, rest], 1), "two clusters")  # [1200, 8]


def test_vae_learns_two_clusters(two_clusters):
    p = VAEParams(latent_dim=2, hidden_dim=64, epochs=40, batch_size=64, lr=3e-3, cache=False)
    vae = train_vae(two_clusters.vectors, p)
    diag = vae_diagnostics(vae, two_clusters.vectors, gen())
    assert diag["recon_mse"] < 0.1  # standardised units (1.0 = predicting the mean); seen: 0.03
    assert diag["active_units"] >= 1 and diag["variance_ratio"] > 0.5
    x = vae.sample(400, gen())  # what the prior returns (the prior's own path: determinism test)
    share = (x[:, 0] > 0).float().mean()
    assert 0.2 < share < 0.8  # both clusters appear among decoded prior samples
    assert (x[:, 0].abs() > 2).float().mean() > 0.7  # and mostly at them, not in the gap


def test_vae_diagnostics_flag_collapse(two_clusters):
    p = VAEParams(latent_dim=2, hidden_dim=64, epochs=10, batch_size=64, lr=3e-3, beta=1000.0, cache=False)
    diag = vae_diagnostics(train_vae(two_clusters.vectors, p), two_clusters.vectors, gen())
    assert diag["active_units"] == 0
    assert diag["variance_ratio"] < 0.05


def test_vae_cache_roundtrip(tmp_path, monkeypatch, two_clusters):
    monkeypatch.setenv("PRIORLIB_ARTIFACTS", str(tmp_path))
    monkeypatch.delenv("PRIORLIB_NO_CACHE", raising=False)
    p = VAEParams(latent_dim=2, hidden_dim=16, epochs=1)
    first = load_or_train_vae(two_clusters, p)
    files = list(tmp_path.glob("vae-*.safetensors"))
    assert len(files) == 1 and not list(tmp_path.glob("*.pkl"))
    second = load_or_train_vae(two_clusters, p)
    assert torch.equal(first.sample(5, gen()), second.sample(5, gen()))


# ------------------------------------------------------------------ low-density

def test_low_density_draws_beyond_threshold(ref):
    p = LowDensityParams(k=5, quantile=0.9, subsample=500)
    x, info = low_density_sample(ref, 40, gen(), p)
    dist, _ = nearest_neighbours(x, ref.vectors, k=5)
    assert (dist[:, -1] > info["threshold"]).all()
    box = sample_prior("low-density", 10, ref, gen(), proposal="box", k=5, quantile=0.9, subsample=500)
    assert box.shape == (10, D)


def test_low_density_budget(ref):
    with pytest.raises(RuntimeError, match="max_draws"):  # proposals at the mean are never sparse
        sample_prior("low-density", 10, ref, gen(), c=1e-4, max_draws=300, subsample=200)


# ------------------------------------------------------------------ Reference and diagnostics

def test_reference_from_embeddings_respects_scaled_embeddings():
    class Scaled(torch.nn.Embedding):  # like Gemma: forward multiplies by a constant
        def forward(self, ids):
            return super().forward(ids) * 3.0

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = Scaled(50, 4)

        def get_input_embeddings(self):
            return self.emb

    model = Model()
    r = Reference.from_embeddings(model, chunk_size=16)
    assert r.name == "token embeddings" and r.vectors.shape == (50, 4)
    torch.testing.assert_close(r.vectors, 3.0 * model.emb.weight.detach())
    assert torch.equal(r.ids(), torch.arange(50))


def test_reference_fit_auto_shrinks_when_few_rows():
    few = Reference(torch.randn(30, 8, generator=gen()), "few")  # N < 10 d -> Ledoit-Wolf
    assert torch.allclose(few.fit().cov, few.fit("ledoit-wolf").cov)
    many = Reference(torch.randn(500, 8, generator=gen()), "many")
    assert torch.allclose(many.fit().cov, many.fit("none").cov)


def test_prior_diagnostics_and_table(ref, ref_b):
    from priorlib.priors.diagnostics import diagnostics_table, prior_diagnostics

    iso = prior_diagnostics("isotropic", ref, n=10, sigma=0.5)
    rms = math.sqrt(float(torch.trace(ref.fit().cov)) / D)
    assert iso["extras"]["sigma_over_ref_std"] == pytest.approx(0.5 / rms)
    assert torch.equal(iso["samples"], sample_prior("isotropic", 10, ref, gen(0), sigma=0.5))
    exc = prior_diagnostics("exclusion", ref, n=10, c=1.5)
    assert exc["extras"]["acceptance_rate_analytic"] == pytest.approx(1 - 1.5 ** -4)
    rad = prior_diagnostics("exclusion-radius", ref, n=10, q=0.9)["extras"]
    assert rad["rejection_rate_predicted"] == pytest.approx(0.9) and 0 < rad["rejection_rate"] < 1
    table = diagnostics_table(ref, ["fitted-gaussian", ("exclusion", {"c": 9.0}), ("interpolation", {"other": ref_b})])
    assert list(table.index)[:3] == ["fitted-gaussian", "exclusion", "interpolation"]
    assert table.index[-1].startswith("reference")
    assert table.loc["exclusion", "median_mahalanobis"] > 2 * table.loc["fitted-gaussian", "median_mahalanobis"]
    assert {"median_nn_l2", "median_mahalanobis", "share_in_hdr"} <= set(table.columns)


def test_config_knows_the_builtin_prior_names_without_the_registry():
    """config.BUILTIN_PRIORS lets a config reject an unknown prior without importing torch; it must list
    exactly the priors priorlib itself registers (a user's own priors come on top of these)."""
    import subprocess
    import sys
    from priorlib.config import BUILTIN_PRIORS
    code = "import priorlib.priors as p; print(' '.join(p.PRIORS))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == list(BUILTIN_PRIORS), out.stderr
