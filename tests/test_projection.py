"""priorlib.projection: PCA and the cached t-SNE."""
import numpy as np
import pytest

from priorlib.cache import artifacts_dir
from priorlib.projection import pca2, tsne


@pytest.fixture(autouse=True)
def _artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIORLIB_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.delenv("PRIORLIB_NO_CACHE", raising=False)


def test_tsne_is_cached_and_shaped():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(40, 60)), rng.normal(size=(40, 60)) + 5])
    a = tsne(x, perplexity=10, seed=0, max_iter=250)
    b = tsne(x, perplexity=10, seed=0, max_iter=250)
    assert a.shape == (80, 2) and np.array_equal(a, b)
    assert len(list(artifacts_dir().glob("tsne-*.json"))) == 1


def test_pca2_fits_on_one_set_and_projects_another():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * np.array([10.0, 3.0, 1.0, 1.0, 1.0])
    xy, pca = pca2(x, seed=0)
    assert xy.shape == (200, 2) and abs(pca.components_[0, 0]) > 0.99  # the widest axis first
    other, _ = pca2(x[:10] + 1.0, fit_on=x, seed=0)
    assert np.allclose(other, pca.transform(x[:10] + 1.0))
