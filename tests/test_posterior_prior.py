"""The ``posterior`` prior: banks of trained prompts (content-addressed safetensors) as priors."""
import math
import shutil

import pytest
import torch

from priorlib.priors import Reference, parse_params, sample_prior
from priorlib.priors import posterior as post
from priorlib.stats import StreamingGaussian

D = 6


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test gets an empty cache (banks and VAEs) and an empty in-memory bank table."""
    monkeypatch.setenv("PRIORLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PRIORLIB_ARTIFACTS", str(tmp_path / "cache" / "artifacts"))
    post._LOADED.clear()
    yield tmp_path / "cache"
    post._LOADED.clear()


def space(d=D):
    """A stand-in for the model's prompt space: only its dimension matters to this prior."""
    return Reference(torch.randn(50, d, generator=gen(9)), "space")


def known_gaussian(n=4000, d=D, seed=0):
    """Rows from N(mu, C) with a known mu and a full, well-conditioned C."""
    g = gen(seed)
    mu = torch.linspace(-2, 3, d, dtype=torch.float64)
    a = torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    cov = a @ a.T + 0.5 * torch.eye(d, dtype=torch.float64)
    rows = mu + torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    return rows.float(), mu, cov


# ------------------------------------------------------------------------------------ bank store
def test_save_load_roundtrip_and_content_address(cache):
    x = torch.randn(3, 5, D, generator=gen(1))  # 3 prompts of 5 vectors
    sha = post.save_bank(x, {"source": "toy"})
    assert post.bank_path(sha) == cache / "posteriors" / f"{sha}.safetensors" and post.bank_path(sha).exists()
    assert post.save_bank(x, {"source": "toy"}) == sha  # same content, same hash
    assert post.save_bank(x, {"source": "other"}) != sha  # the metadata is part of the address
    assert post.save_bank(x + 1e-3, {"source": "toy"}) != sha
    post._LOADED.clear()
    b = post.load_bank(sha)
    assert torch.equal(b.vectors, x.reshape(15, D)) and b.dim == D and b.n_prompts == 3
    assert b.prompts.tolist() == [0] * 5 + [1] * 5 + [2] * 5 and b.meta == {"source": "toy"}
    assert torch.equal(b.prompt(1), x[1])
    assert not list((cache / "posteriors").glob("*.tmp"))  # atomic write leaves no temporary file


def test_missing_malformed_and_corrupt_banks_raise(cache):
    with pytest.raises(ValueError, match="no bank 0123456789abcdef0123"):
        post.load_bank("0123456789abcdef0123")
    with pytest.raises(ValueError, match="hex"):
        post.load_bank("../../etc/passwd")
    with pytest.raises(ValueError, match="no bank"):  # through the params, as a TrainConfig would
        parse_params("posterior", {"bank": "0123456789abcdef0123"})
    a = post.save_bank(torch.randn(4, D, generator=gen(1)))
    b = post.save_bank(torch.randn(4, D, generator=gen(2)))
    post._LOADED.clear()
    shutil.copy(post.bank_path(b), post.bank_path(a))  # a's name, b's content
    with pytest.raises(ValueError, match="does not match its hash"):
        post.load_bank(a)


def test_bad_bank_contents_raise():
    with pytest.raises(ValueError, match=r"vectors \[N >= 2, d\]"):
        post.save_bank(torch.randn(D))
    with pytest.raises(ValueError, match="finite"):
        post.save_bank(torch.full((3, D), float("nan")))
    with pytest.raises(ValueError, match="one index per row"):
        post.save_bank(torch.randn(4, D), prompts=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="every index used"):
        post.save_bank(torch.randn(4, D), prompts=torch.tensor([0, 0, 2, 2]))


# ------------------------------------------------------------------------------------ params
@pytest.mark.parametrize("params,match", [
    ({"fit": "flow"}, "fit must be gaussian, vae or copy"),
    ({"scale": 0.0}, "scale must be > 0"),
    ({"fit": "copy", "scale": 0.5}, "scale must be 1"),
    ({"shrinkage": 1.5}, "shrinkage"),
    ({"source": 7}, r"source must be -1 or in \[0, 3\)"),
    ({"epochs": 0}, "epochs must be >= 1"),
])
def test_params_are_validated(params, match):
    sha = post.save_bank(torch.randn(3, 5, D, generator=gen(1)))
    with pytest.raises(ValueError, match=match):
        sample_prior("posterior", 5, space(), gen(), bank=sha, **params)


def test_string_params_parse_as_in_a_config():
    sha = post.save_bank(torch.randn(3, 5, D, generator=gen(1)))
    p = parse_params("posterior", {"bank": sha, "fit": "vae", "epochs": "5", "beta": "0.5", "source": "2"})
    assert p.fit == "vae" and p.epochs == 5 and p.beta == 0.5 and p.source == 2
    assert p.vae_params().epochs == 5 and p.vae_params().batch_size == 32


def test_config_key_follows_the_bank():
    from priorlib.config import TrainConfig
    a = post.save_bank(torch.randn(3, 5, D, generator=gen(1)))
    b = post.save_bank(torch.randn(3, 5, D, generator=gen(2)))
    ca = TrainConfig(model="tiny-random-llama", prior="posterior", prior_params={"bank": a, "fit": "gaussian"})
    cb = TrainConfig(model="tiny-random-llama", prior="posterior", prior_params={"bank": b, "fit": "gaussian"})
    assert ca.key() != cb.key()
    with pytest.raises(ValueError, match="no bank"):
        TrainConfig(model="tiny-random-llama", prior="posterior", prior_params={"bank": "f" * 20})


# ------------------------------------------------------------------------------------ the fits
def test_dimension_mismatch_raises():
    sha = post.save_bank(torch.randn(10, D, generator=gen(1)))
    for fit in ("gaussian", "vae", "copy"):
        with pytest.raises(ValueError, match=f"dimension {D}.*dimension {D + 2}"):
            sample_prior("posterior", 2, space(D + 2), gen(), bank=sha, fit=fit, epochs=1)


def test_gaussian_recovers_mean_and_covariance():
    """4000 bank rows from a known N(mu, C), 20000 draws: mean within 0.06 per coordinate (the sd of
    the estimate is about 0.02 here) and covariance within 6% (relative Frobenius norm)."""
    rows, mu, cov = known_gaussian()
    sha = post.save_bank(rows)
    x = sample_prior("posterior", 20000, space(), gen(3), bank=sha, fit="gaussian", shrinkage="none").double()
    assert (x.mean(0) - mu).abs().max() < 0.06
    assert torch.linalg.norm(torch.cov(x.T) - cov) / torch.linalg.norm(cov) < 0.06


def test_gaussian_is_the_reference_fit_with_shrinkage_and_scale():
    """A bank of 30 rows in d = 6 (N < 10 d): ``auto`` is the Ledoit-Wolf fit, exactly as fitted-gaussian does it."""
    rows = torch.randn(30, D, generator=gen(4))
    sha = post.save_bank(rows)
    got = sample_prior("posterior", 7, space(), gen(5), bank=sha, scale=0.5)
    acc = StreamingGaussian(D).update(rows)
    want = acc.fit("ledoit-wolf").sample(7, gen(5), scale=0.5).float()
    assert torch.allclose(got, want, atol=1e-5)


def test_copy_returns_exact_rows_of_one_source_prompt():
    x = torch.randn(4, 5, D, generator=gen(6))
    sha = post.save_bank(x)
    for k in range(4):
        assert torch.equal(sample_prior("posterior", 5, space(), gen(0), bank=sha, fit="copy", source=k), x[k])
    picks = set()
    for seed in range(12):
        got = sample_prior("posterior", 5, space(), gen(seed), bank=sha, fit="copy")
        match = [k for k in range(4) if torch.equal(got, x[k])]
        assert len(match) == 1
        picks.add(match[0])
    assert len(picks) > 1  # the generator picks the source prompt
    assert torch.equal(sample_prior("posterior", 3, space(), gen(0), bank=sha, fit="copy", source=2), x[2, :3])
    with pytest.raises(ValueError, match="needs 6 vectors but source prompt 1"):
        sample_prior("posterior", 6, space(), gen(0), bank=sha, fit="copy", source=1)


@pytest.mark.parametrize("fit", ["gaussian", "vae", "copy"])
def test_same_seed_same_draw(fit):
    sha = post.save_bank(torch.randn(4, 5, D, generator=gen(7)))
    kw = dict(bank=sha, fit=fit, epochs=3, hidden_dim=16, latent_dim=4)
    a = sample_prior("posterior", 5, space(), gen(0), **kw)
    post._LOADED.clear()  # reloaded from disk (and the VAE from its cache): the same draw
    b = sample_prior("posterior", 5, space(), gen(0), **kw)
    assert a.shape == (5, D) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b)
    if fit != "copy":
        assert not torch.equal(a, sample_prior("posterior", 5, space(), gen(1), **kw))


def test_vae_fit_is_cached_and_scale_pulls_to_the_bank_mean(cache):
    rows, _, _ = known_gaussian(n=200)
    sha = post.save_bank(rows)
    kw = dict(bank=sha, fit="vae", epochs=20, hidden_dim=32, latent_dim=4)
    full = sample_prior("posterior", 9, space(), gen(2), **kw)
    half = sample_prior("posterior", 9, space(), gen(2), scale=0.5, **kw)
    mean = rows.mean(0)
    assert torch.allclose(half - mean, 0.5 * (full - mean), atol=1e-5)
    assert len(list((cache / "artifacts").glob("vae-*.safetensors"))) == 1  # trained once, on the bank rows
    assert (full.mean(0) - mean).abs().max() < 2.0  # decoded draws land near the bank, not anywhere
