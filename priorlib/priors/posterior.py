"""``posterior``: prompts trained on one task become the prior for another.

A *bank* is a matrix of trained prompt vectors ``[N, d]`` (e.g. the 20 vectors of each of four SQuAD
runs, N = 80) plus, per row, the index of the source prompt it came from. Banks are stored
content-addressed as safetensors, ``<cache>/posteriors/<sha>.safetensors``, where ``sha`` is a hash of
the rows, the prompt index and the metadata; the prior's ``bank`` parameter is that hash string, so a
run's config key (and with it the run store's folder) changes whenever the bank does. Nothing is ever
unpickled.

    sha = save_bank(trained, {"source": "squad"}, prompts=prompt_index)   # trained: [N, d]
    x = sample_prior("posterior", 20, ref, gen, bank=sha, fit="gaussian")  # [20, d]

Three ways to turn the bank into a prior (``fit``):

- ``gaussian``: ``x ~ N(mu_B, scale^2 Sigma_B)``, the mean and covariance of the bank rows with shrinkage
  (``Reference.fit``: with N < 10 d, ``auto`` means Ledoit-Wolf towards ``tr(S)/d I``);
- ``vae``: the ``vae`` prior's VAE, trained on the bank rows (same loss and cache; params below), its
  decoded ``N(0, I)`` latents pulled towards the bank mean by ``scale`` (``x = mu_B + scale (g(z) - mu_B)``);
- ``copy``: one trained source prompt itself, rows in position order (a warm start, the control that
  tells "trained on the source task" from "drawn from a distribution fitted to such prompts"). The
  source prompt is picked by the generator, or fixed with ``source = k``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from .base import check_shrinkage, register_prior
from .reference import Reference

__all__ = ["PosteriorParams", "Bank", "save_bank", "load_bank", "bank_path", "bank_dir", "bank_hash"]

HASH_LEN = 20  # hex characters of sha256 kept in the file name and the prior param
_HEX = re.compile(rf"^[0-9a-f]{{{HASH_LEN}}}$")
_LOADED: dict[str, "Bank"] = {}  # file -> Bank: fits are memoised on the bank's Reference


# ------------------------------------------------------------------------------------------ banks
@dataclass(eq=False)
class Bank:
    """Trained prompt vectors ``vectors: [N, d]`` with ``prompts: [N]`` (source prompt of each row)."""
    vectors: Tensor
    prompts: Tensor
    meta: dict
    sha: str
    _reference: Reference | None = field(default=None, init=False, repr=False)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def n_prompts(self) -> int:
        return int(self.prompts.max()) + 1

    def prompt(self, k: int) -> Tensor:
        """Rows of source prompt ``k`` in their stored (position) order: ``[n_k, d]``."""
        return self.vectors[self.prompts == k]

    def reference(self) -> Reference:
        """The rows as a :class:`Reference`, so fits and the VAE cache work as for any other space."""
        if self._reference is None:
            self._reference = Reference(self.vectors, f"posterior bank {self.sha}")
        return self._reference


def bank_dir() -> Path:
    from ..models import cache_dir
    return cache_dir() / "posteriors"


def bank_path(sha: str) -> Path:
    return bank_dir() / f"{sha}.safetensors"


def _check_rows(x: Tensor, p: Tensor, where: str = "a posterior bank") -> None:
    """The checks every bank passes, when saved and when loaded: ``x`` float32 ``[N >= 2, d]`` finite,
    ``p`` int64 ``[N]`` with indices 0..P-1, every one used."""
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"{where} needs vectors [N >= 2, d] or [P, n, d], got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).any(1).sum())
        raise ValueError(f"{where} must hold finite vectors; {bad} of {x.shape[0]} rows are NaN or infinite")
    if p.shape != (x.shape[0],):
        raise ValueError(f"{where}: prompts must give one index per row ({x.shape[0]}), got shape {tuple(p.shape)}")
    if int(p.min()) < 0 or set(p.unique().tolist()) != set(range(int(p.max()) + 1)):
        raise ValueError(f"{where}: prompt indices must be 0..P-1 with every index used, got "
                         f"{sorted(set(p.unique().tolist()))[:8]}")


def _as_rows(vectors: Tensor, prompts: Tensor | None) -> tuple[Tensor, Tensor]:
    """``([N, d] float32, [N] long)``; a ``[P, n, d]`` stack gives prompt ``p`` to its ``n`` rows."""
    x = torch.as_tensor(vectors).detach().to("cpu", torch.float32)
    if x.ndim == 3 and prompts is None:
        prompts = torch.arange(x.shape[0]).repeat_interleave(x.shape[1])
        x = x.reshape(-1, x.shape[-1])
    if prompts is not None and torch.as_tensor(prompts).is_floating_point():
        raise ValueError("prompts must be integer indices, got a floating-point tensor")
    p = torch.zeros(x.shape[0], dtype=torch.long) if prompts is None else torch.as_tensor(prompts).long().cpu()
    _check_rows(x, p)
    return x.contiguous(), p.contiguous()


def bank_hash(vectors: Tensor, prompts: Tensor, meta: dict) -> str:
    """sha256 (first 20 hex) of shape, float32 bytes, prompt indices and the canonical-JSON metadata."""
    h = hashlib.sha256(str(tuple(vectors.shape)).encode())
    h.update(vectors.numpy().tobytes())
    h.update(prompts.numpy().tobytes())
    h.update(json.dumps(meta, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()[:HASH_LEN]


def save_bank(vectors: Tensor, meta: dict | None = None, *, prompts: Tensor | None = None) -> str:
    """Store a bank and return its hash (the ``bank`` param). Idempotent; the write is atomic.

    ``vectors``: ``[N, d]`` (with ``prompts: [N]``, the source prompt of each row; default: one prompt)
    or ``[P, n, d]`` (P prompts of n vectors). ``meta`` must be JSON (it is hashed and stored as text).
    """
    from safetensors.torch import save_file
    meta = json.loads(json.dumps(meta or {}, allow_nan=False))  # JSON only; fails here, not at load time
    if not isinstance(meta, dict):
        raise ValueError(f"a posterior bank's meta must be a JSON object, got {type(meta).__name__}")
    x, p = _as_rows(vectors, prompts)
    sha = bank_hash(x, p, meta)
    path = bank_path(sha)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{sha}.{os.getpid()}.tmp")
        save_file({"vectors": x, "prompts": p}, str(tmp), metadata={"meta": json.dumps(meta, sort_keys=True)})
        tmp.replace(path)  # concurrent writers never leave half a file
    return sha


def load_bank(sha: str) -> Bank:
    """The bank stored under ``sha`` (checked against its content); one-line ValueError if missing."""
    if not isinstance(sha, str) or not _HEX.match(sha):
        raise ValueError(f"posterior: bank must be a {HASH_LEN}-hex-digit hash from save_bank, got {sha!r}")
    path = bank_path(sha)
    if not path.exists():
        raise ValueError(f"posterior: no bank {sha} in {bank_dir()} (save one with posterior.save_bank)")
    if str(path) in _LOADED:
        return _LOADED[str(path)]
    x, p, meta = _read_bank(path)
    if bank_hash(x, p, meta) != sha:
        raise ValueError(f"posterior: bank file {path} does not match its hash (corrupt or edited); delete it")
    _LOADED[str(path)] = Bank(x, p, meta, sha)
    return _LOADED[str(path)]


def _read_bank(path: Path) -> tuple[Tensor, Tensor, dict]:
    """``(vectors, prompts, meta)`` of a bank file, verified: safetensors with exactly ``vectors``
    (float32 ``[N, d]``, finite) and ``prompts`` (int64 ``[N]``, 0..P-1), and a JSON-object ``meta``.
    Every problem is a one-line ValueError naming the file (never a safetensors traceback)."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = (f.metadata() or {}).get("meta", "{}")
            keys = set(f.keys())
            tensors = {k: f.get_tensor(k) for k in keys & {"vectors", "prompts"}}
    except Exception as err:  # SafetensorError (truncated, not safetensors), OSError
        raise ValueError(" ".join(f"posterior: bank file {path} is not a readable safetensors file ({err})".split())) from None
    where = f"posterior: bank file {path}"
    if keys != {"vectors", "prompts"}:
        raise ValueError(f"{where} must hold exactly the tensors 'prompts' and 'vectors', got {sorted(keys)}")
    x, p = tensors["vectors"], tensors["prompts"]
    if x.dtype != torch.float32:
        raise ValueError(f"{where}: vectors are {str(x.dtype).replace('torch.', '')}, expected float32")
    if p.dtype != torch.int64:
        raise ValueError(f"{where}: prompts are {str(p.dtype).replace('torch.', '')}, expected int64")
    _check_rows(x, p, where)
    try:
        meta = json.loads(raw_meta)
    except ValueError:
        raise ValueError(f"{where}: its meta is not valid JSON") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: its meta must be a JSON object, got {type(meta).__name__}")
    return x, p, meta


# ------------------------------------------------------------------------------------------ prior
@dataclass
class PosteriorParams:
    bank: str = ""  # the hash returned by save_bank
    fit: Literal["gaussian", "vae", "copy"] = "gaussian"
    scale: float = 1.0  # gaussian: std multiplier; vae: pull towards the bank mean; copy: must be 1
    shrinkage: str | float = "auto"  # gaussian: as fitted-gaussian (auto = Ledoit-Wolf when N < 10 d)
    source: int = -1  # copy: which source prompt (-1: picked by the generator)
    # vae: the vae prior's params; epochs and batch size suit a bank of ~100 rows (the vae prior's
    # defaults, 10 epochs of 256 rows, would take 10 optimiser steps on it)
    latent_dim: int = 16
    hidden_dim: int = 256
    beta: float = 1.0
    var_match: float = 0.0
    epochs: int = 300
    lr: float = 1e-3
    batch_size: int = 32
    train_seed: int = 0

    def __post_init__(self):
        if self.fit not in ("gaussian", "vae", "copy"):
            raise ValueError(f"posterior: fit must be gaussian, vae or copy, got {self.fit!r}")
        if not self.scale > 0:
            raise ValueError(f"posterior: scale must be > 0, got {self.scale}")
        if self.fit == "copy" and self.scale != 1.0:
            raise ValueError(f"posterior: fit=copy returns a trained prompt as is; scale must be 1, got {self.scale}")
        check_shrinkage(self.shrinkage)
        self.vae_params()  # validates the VAE fields
        bank = load_bank(self.bank)  # missing / malformed bank: one-line error before any compute
        if not -1 <= int(self.source) < bank.n_prompts:
            raise ValueError(f"posterior: source must be -1 or in [0, {bank.n_prompts}) for bank {self.bank}, "
                             f"got {self.source}")

    def vae_params(self):
        from .vae import VAEParams
        return VAEParams(latent_dim=self.latent_dim, hidden_dim=self.hidden_dim, beta=self.beta,
                         var_match=self.var_match, epochs=self.epochs, lr=self.lr, batch_size=self.batch_size,
                         train_seed=self.train_seed)


def _copy(bank: Bank, n: int, generator: torch.Generator, source: int) -> Tensor:
    """The first ``n`` rows of one source prompt (picked by ``generator`` unless ``source >= 0``)."""
    k = int(torch.randint(bank.n_prompts, (1,), generator=generator)) if source < 0 else int(source)
    rows = bank.prompt(k)  # [n_k, d]
    if rows.shape[0] < n:
        raise ValueError(f"posterior: fit=copy needs {n} vectors but source prompt {k} of bank {bank.sha} "
                         f"has {rows.shape[0]}")
    return rows[:n].clone()  # [n, d]


@register_prior("posterior", PosteriorParams)
def posterior(generator: torch.Generator, shape: tuple[int, int], reference: Reference, *, bank: str, fit: str,
              scale: float, shrinkage: str | float, source: int, **vae) -> Tensor:
    """Posterior as prior: a Gaussian or VAE fitted to a bank of trained prompts, or a copy of one.

    ``gaussian``: ``x = mu_B + scale L z`` with ``L L^T = Sigma_B`` (shrunk); ``vae``:
    ``x = mu_B + scale (g(z) - mu_B)``, ``z ~ N(0, I)``, ``g`` the decoder of a VAE trained on the bank
    rows; ``copy``: the rows of one trained source prompt. ``reference`` is the space the new prompt
    lives in; only its dimension is used (it must match the bank's).
    """
    b = load_bank(bank)
    if b.dim != reference.dim:
        raise ValueError(f"posterior: bank {bank} holds vectors of dimension {b.dim}, but this model's "
                         f"prompt space ({reference.name}) has dimension {reference.dim}")
    n = shape[0]
    if fit == "copy":
        return _copy(b, n, generator, source)
    if fit == "gaussian":
        return b.reference().fit(shrinkage).sample(n, generator, scale=scale)  # [n, d]
    from .vae import load_or_train_vae
    model = load_or_train_vae(b.reference(), PosteriorParams(bank=bank, **vae).vae_params())
    mean = b.vectors.mean(0)  # [d]
    return mean + scale * (model.sample(n, generator) - mean)  # [n, d]
