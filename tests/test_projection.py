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


def _inside_hull(cloud_xy, point_xy) -> bool:
    from scipy.spatial import Delaunay
    return bool(Delaunay(cloud_xy).find_simplex(point_xy[None])[0] >= 0)


def test_joint_whitened_pca_draws_a_far_point_outside_the_cloud():
    from priorlib.projection import JointWhitenedPCA
    rng = np.random.default_rng(0)
    d = 40
    scale = np.r_[np.full(3, 10.0), np.ones(d - 3)]
    cloud = rng.normal(size=(2000, d)) * scale
    far = np.zeros((5, d))
    far[:, 10] = 60.0 + rng.normal(size=5)  # 60 sd along a low-variance axis: Mahalanobis ~60
    cov = np.cov(cloud, rowvar=False)
    maha = np.sqrt(np.einsum("nd,de,ne->n", far - cloud.mean(0), np.linalg.inv(cov), far - cloud.mean(0)))
    assert maha.min() > 50
    old_cloud, pca = pca2(cloud)
    assert _inside_hull(old_cloud, pca.transform(far)[0])  # the tokens-only PCA puts it inside
    proj = JointWhitenedPCA(cloud, far)
    new_cloud, new_far = proj.transform(cloud), proj.transform(far)
    assert not _inside_hull(new_cloud, new_far[0])
    r = np.linalg.norm(new_cloud - np.median(new_cloud, 0), axis=1)
    assert np.linalg.norm(new_far[0] - np.median(new_cloud, 0)) > np.quantile(r, 0.99)
    assert 0 < proj.explained[1] <= proj.explained[0] < 1


def test_activation_projection_tames_a_massive_dimension():
    from priorlib.projection import ActivationProjection
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 20))
    x[0, 3] = 10_000.0   # the first-token row carries a massive activation
    x[1:, 3] *= 50.0     # and that dimension is a rogue one on every row
    _, plain = pca2(x)
    assert plain.explained_variance_ratio_[0] > 0.9
    first = np.zeros(len(x), bool)
    first[0] = True
    proj = ActivationProjection(x, first_token=first)
    assert proj.explained[0] < 0.5 and proj.dropped[0] and proj.dropped.sum() < 0.05 * len(x)
    assert proj.transform(x[:3]).shape == (3, 2) and "standardised" in proj.description
