"""StreamingGaussian / Gaussian against numpy, scipy and sklearn (float64, fixed seeds)."""
import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.covariance import ledoit_wolf, ledoit_wolf_shrinkage

from priorlib.stats import Gaussian, StreamingGaussian


def _data(n=600, d=6, seed=0, offset=7.0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ mix + offset  # [n, d]


def test_chunks_match_numpy_whole():
    x = _data()
    acc = StreamingGaussian()
    for chunk in torch.split(x, [1, 2, 50, 97, 150, 300]):  # uneven, including a single row
        acc.update(chunk)
    assert acc.n == 600
    np.testing.assert_allclose(acc.mean.numpy(), x.numpy().mean(0), atol=1e-10, rtol=0)
    np.testing.assert_allclose(acc.cov.numpy(), np.cov(x.numpy(), rowvar=False), atol=1e-10, rtol=0)


def test_update_flattens_leading_dims():
    x = _data(n=60)
    a, b = StreamingGaussian(), StreamingGaussian()
    a.update(x.reshape(3, 4, 5, 6))
    b.update(x)
    np.testing.assert_allclose(a.cov.numpy(), b.cov.numpy(), atol=1e-12)


def test_merge_equals_single_pass_and_roundtrips_through_dict():
    x = _data()
    parts = [StreamingGaussian().update(c) for c in torch.split(x, [200, 250, 150])]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    whole = StreamingGaussian().update(x)
    np.testing.assert_allclose(merged.mean.numpy(), whole.mean.numpy(), atol=1e-10)
    np.testing.assert_allclose(merged.cov.numpy(), whole.cov.numpy(), atol=1e-10)
    assert merged.shrinkage_intensity() == pytest.approx(whole.shrinkage_intensity(), abs=1e-10)
    again = StreamingGaussian.from_dict(merged.to_dict())
    assert all(isinstance(v, torch.Tensor) for v in merged.to_dict().values())
    assert again.n == 600
    np.testing.assert_allclose(again.cov.numpy(), whole.cov.numpy(), atol=1e-12)


def test_fit_recovers_known_gaussian():
    g = torch.Generator().manual_seed(1)
    d = 5
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    true = Gaussian(torch.arange(d, dtype=torch.float64), a @ a.T + torch.eye(d, dtype=torch.float64))
    acc = StreamingGaussian()
    for _ in range(20):
        acc.update(true.sample(10_000, g))
    fit = acc.fit()
    # 200k draws: standard errors ~ sqrt(Sigma_ii / n) ~ 0.01 for the mean, a few 0.01 for cov
    assert (fit.mean - true.mean).abs().max() < 0.05
    assert ((fit.cov - true.cov).abs().max() / true.cov.abs().max()) < 0.03


def test_ledoit_wolf_matches_sklearn():
    x = _data(n=40, d=12, seed=3)  # few rows per dim: shrinkage matters
    acc = StreamingGaussian()
    for chunk in x.split(7):
        acc.update(chunk)
    expected = ledoit_wolf_shrinkage(x.numpy())
    assert 0.0 < expected < 1.0
    assert acc.shrinkage_intensity() == pytest.approx(expected, abs=1e-10)
    np.testing.assert_allclose(acc.fit("ledoit-wolf").cov.numpy(), ledoit_wolf(x.numpy())[0], atol=1e-10)


def test_float_shrinkage_and_validation():
    acc = StreamingGaussian().update(_data())
    cov = acc.cov
    shrunk = acc.fit(1.0).cov
    np.testing.assert_allclose(shrunk.numpy(), (torch.trace(cov) / 6 * torch.eye(6, dtype=torch.float64)).numpy())
    with pytest.raises(ValueError):
        acc.fit(1.5)
    with pytest.raises(ValueError):
        acc.fit("oas")
    with pytest.raises(ValueError):
        StreamingGaussian().update(_data(n=1)).cov


def test_gaussian_methods_against_scipy():
    x = _data(n=300)
    fit = StreamingGaussian().update(x).fit()
    q = _data(n=10, seed=9)
    ref = multivariate_normal(fit.mean.numpy(), fit.cov.numpy())
    np.testing.assert_allclose(fit.log_prob(q).numpy(), ref.logpdf(q.numpy()), rtol=1e-9)
    diff = (q - fit.mean).numpy()
    maha = np.sqrt(np.einsum("ni,ij,nj->n", diff, np.linalg.inv(fit.cov.numpy()), diff))
    np.testing.assert_allclose(fit.mahalanobis(q).numpy(), maha, rtol=1e-9)
    np.testing.assert_allclose((fit.precision @ fit.cov).numpy(), np.eye(6), atol=1e-8)


def test_sample_scale_and_determinism():
    gauss = Gaussian(torch.zeros(3), torch.diag(torch.tensor([1.0, 4.0, 9.0])))
    a = gauss.sample(20_000, torch.Generator().manual_seed(0), scale=2.0)
    b = gauss.sample(20_000, torch.Generator().manual_seed(0), scale=2.0)
    assert torch.equal(a, b)
    # std of x_i is 2 * sqrt(Sigma_ii); sampling error of a std at n=20k is ~0.5%
    np.testing.assert_allclose(a.std(0).numpy(), [2.0, 4.0, 6.0], rtol=0.02)


def test_cholesky_jitter_for_singular_cov():
    v = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    gauss = Gaussian(torch.zeros(3), torch.outer(v, v))  # rank 1
    L = gauss.cholesky
    assert torch.isfinite(L).all()
    assert torch.allclose(L @ L.T, gauss.cov, atol=1e-4)
