"""Priors: where prompt vectors start. ``(generator, shape, reference, **params) -> Tensor``.

    ref = Reference.from_embeddings(model, tok)
    x = sample_prior("exclusion", 20, ref, torch.Generator().manual_seed(0), c=5.0)   # [20, d]

Families (one file each): ``isotropic``, ``xavier``, ``fitted-gaussian`` (gaussian.py),
``exclusion`` and ``exclusion-radius`` (exclusion.py), ``interpolation``, ``vae``, ``vocab-sample``
(vocab.py), ``text``, ``low-density``, and
``posterior`` (posterior.py: prompts trained on one task, as a bank, become the prior of another).
Diagnostics (where the draws land) are in ``priorlib.priors.diagnostics``.
"""
from .base import (PRIORS, PriorSpec, as_generator, get_prior, make_params, parse_params,  # noqa: F401
                   register_prior, sample_prior)
from .reference import Reference  # noqa: F401
from . import gaussian, exclusion, interpolation, vae, vocab, text, lowdensity, posterior  # noqa: F401,E402  (registers)
from .exclusion import exclusion_acceptance_rate, exclusion_radius_rejection_rate  # noqa: F401

__all__ = ["PRIORS", "PriorSpec", "Reference", "get_prior", "make_params", "parse_params", "register_prior",
           "sample_prior", "as_generator", "exclusion_acceptance_rate", "exclusion_radius_rejection_rate"]
