"""``vae``: a small VAE trained on the reference rows; prompts are decoded ``N(0, I)`` latents.

Inputs are standardised per dimension (``u = (x - m) / s``). With encoder ``q(z|u) = N(mu(u),
diag sigma^2(u))`` and decoder ``g(z)`` the loss per row is

    |u - g(z)|^2 + beta * sum_j KL_j + gamma * mean_i (Var[g(z')]_i - Var[u]_i)^2 ,
    KL_j = (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2) / 2 ,   z' ~ N(0, I)

(the last term, weight ``var_match``, pushes the decoded prior samples to the data's spread).
Trained VAEs go through :func:`priorlib.cache.cached`, keyed by a fingerprint of the reference rows and
the params, so each (reference, params) pair is trained once.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .base import register_prior
from .reference import Reference

__all__ = ["VAEParams", "VAE", "train_vae", "load_or_train_vae", "vae_diagnostics"]


@dataclass
class VAEParams:
    latent_dim: int = 16
    hidden_dim: int = 256
    beta: float = 1.0  # KL weight
    var_match: float = 0.0  # weight of the variance-matching penalty
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 256
    train_seed: int = 0  # training is seeded by this; the sampling generator only draws the latents
    cache: bool = True

    def __post_init__(self):
        for key in ("latent_dim", "hidden_dim", "epochs", "batch_size"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"vae: {key} must be >= 1, got {getattr(self, key)}")
        for key in ("beta", "var_match"):
            if getattr(self, key) < 0:
                raise ValueError(f"vae: {key} must be >= 0, got {getattr(self, key)}")
        if not self.lr > 0:
            raise ValueError(f"vae: lr must be > 0, got {self.lr}")

    def training_key(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "cache"}


class VAE(nn.Module):
    """MLP encoder/decoder on standardised inputs; ``decode`` returns original units."""

    def __init__(self, dim: int, latent_dim: int, hidden_dim: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim),
                                     nn.GELU(), nn.Linear(hidden_dim, 2 * latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.GELU(),
                                     nn.Linear(hidden_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, dim))
        self.register_buffer("x_mean", torch.zeros(dim))
        self.register_buffer("x_std", torch.ones(dim))
        self.latent_dim = latent_dim

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu, logvar)``, each ``[b, latent]``, for rows ``x: [b, d]`` in original units."""
        mu, logvar = self.encoder((x - self.x_mean) / self.x_std).chunk(2, dim=1)
        return mu, logvar.clamp(-20, 10)

    def decode(self, z: Tensor) -> Tensor:
        """``x = m + s * g(z)``: ``[b, latent] -> [b, d]`` in original units."""
        return self.decoder(z) * self.x_std + self.x_mean

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return self.decode(torch.randn(n, self.latent_dim, generator=generator))  # [n, d]


def _loss(vae: VAE, u: Tensor, p: VAEParams, g: torch.Generator) -> Tensor:
    """The loss of the module doc, averaged over the batch ``u: [b, d]`` (standardised)."""
    mu, logvar = vae.encoder(u).chunk(2, dim=1)
    logvar = logvar.clamp(-20, 10)
    z = mu + torch.randn(mu.shape, generator=g) * (0.5 * logvar).exp()  # [b, latent]
    recon = (vae.decoder(z) - u).pow(2).sum(1).mean()
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
    loss = recon + p.beta * kl
    if p.var_match > 0:
        dec = vae.decoder(torch.randn(u.shape[0], vae.latent_dim, generator=g))  # [b, d]
        loss = loss + p.var_match * (dec.var(0) - u.var(0)).pow(2).mean()
    return loss


@contextmanager
def _threads(n: int):
    """Temporarily use ``n`` intra-op threads (tiny matmuls are slower, not faster, on several)."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(n, before)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_vae(vectors: Tensor, p: VAEParams, progress: bool = False) -> VAE:
    """Train a VAE on ``vectors: [N, d]``, deterministically for ``p.train_seed``.

    Runs on one intra-op thread: these matmuls are too small to gain from more, and on a shared
    machine extra threads spin and slow it down by 5-40x; one thread also keeps results independent
    of the core count. About 0.6 s per epoch over 10k x 576 rows at the default sizes.
    """
    with _threads(1):
        return _train(vectors, p, progress)


def _train(vectors: Tensor, p: VAEParams, progress: bool) -> VAE:
    from tqdm.auto import tqdm

    x = vectors.float()
    g = torch.Generator().manual_seed(p.train_seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(p.train_seed)
        vae = VAE(x.shape[1], p.latent_dim, p.hidden_dim)
    vae.x_mean.copy_(x.mean(0))
    vae.x_std.copy_(x.std(0).clamp_min(1e-6))
    u = (x - vae.x_mean) / vae.x_std  # [N, d]
    opt = torch.optim.Adam(vae.parameters(), lr=p.lr)
    vae.train()
    bar = tqdm(range(p.epochs), desc="vae", disable=not progress, leave=False)
    for _ in bar:
        total = 0.0
        for idx in torch.randperm(u.shape[0], generator=g).split(p.batch_size):
            loss = _loss(vae, u[idx], p, g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        bar.set_postfix(loss=total / u.shape[0])
    vae.eval().requires_grad_(False)
    return vae


def load_or_train_vae(reference: Reference, p: VAEParams, progress: bool = False) -> VAE:
    """The VAE for ``(reference, p)``: its weights from :func:`priorlib.cache.cached`, trained there once."""
    if not p.cache:
        return train_vae(reference.vectors, p, progress=progress)
    from ..cache import cached

    def compute() -> dict:
        return {k: v.contiguous() for k, v in train_vae(reference.vectors, p, progress=progress).state_dict().items()}

    state = cached("vae", {"reference": reference.content_hash(), "params": p.training_key()}, compute, verbose=False)
    vae = VAE(reference.dim, p.latent_dim, p.hidden_dim)
    vae.load_state_dict(state)
    return vae.eval().requires_grad_(False)


@torch.no_grad()
def vae_diagnostics(vae: VAE, vectors: Tensor, generator: torch.Generator, n_samples: int = 2048,
                    active_threshold: float = 0.01) -> dict:
    """Posterior-collapse numbers for a trained VAE on rows ``vectors: [N, d]``.

    ``kl_per_dim[j] = mean_rows KL_j``; ``active_units = #{j : kl_per_dim[j] > 0.01}``;
    ``variance_ratio = tr Cov[decode(z ~ N(0, I))] / tr Cov[x]`` (0 when the decoder ignores z);
    ``recon_mse`` is the mean squared error of ``decode(mu(x))`` in standardised units.
    """
    x = vectors.float()
    mu, logvar = vae.encode(x)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean(0)  # [latent]
    recon = ((vae.decode(mu) - x) / vae.x_std).pow(2).mean()
    dec = vae.sample(n_samples, generator)  # [s, d]
    return {"kl_per_dim": kl, "active_units": int((kl > active_threshold).sum()), "latent_dim": vae.latent_dim,
            "variance_ratio": float(dec.double().var(0).sum() / x.double().var(0).sum()),
            "recon_mse": float(recon)}


@register_prior("vae", VAEParams)
def vae(generator: torch.Generator, shape: tuple[int, int], reference: Reference, **params) -> Tensor:
    """VAE prior: ``x = m + s * g(z)``, ``z ~ N(0, I_latent)``, with ``g`` a VAE decoder trained on the reference.

    The loss (module doc) is the beta-VAE ELBO on standardised rows plus an optional
    variance-matching term. Training is seeded by ``train_seed`` and cached; ``generator`` draws ``z``.
    """
    model = load_or_train_vae(reference, VAEParams(**params))
    return model.sample(shape[0], generator)  # [n, d]
