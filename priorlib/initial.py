"""Initial prompts: draw each prompt block from its prior, in the space it lives in.

- the token-level soft prompt lives in the token-embedding space (``soft_space="tokens"``), or in the
  activation space of a hook point (``soft_space="layers.0.resid_post"``: a prior fitted to
  activations, as the paper's section 4.4 does);
- the deep block of layer k lives in the space of that layer's input, ``layers.{k}.resid_pre``,
  captured on the task's training texts.

Activation references go through :func:`priorlib.cache.cached` (keyed by model, point and texts).
"""
from __future__ import annotations

import torch

from priorlib import arch
from priorlib.config import TrainConfig
from priorlib.activations import capture
from priorlib.cache import cached, fingerprint
from priorlib.priors import Reference, sample_prior
from priorlib.stats import StreamingGaussian

DATA_FREE = {"isotropic", "xavier"}
MAX_ROWS = 20_000


def activation_reference(model, tok, texts: list[str], point: str, *, model_name: str, max_length: int = 256,
                         name: str | None = None) -> Reference:
    """Activations at ``point`` on ``texts``: a row subsample (<= 20k) plus a Gaussian fitted to *all* tokens."""
    # the attention kernel and the weights' dtype change bf16 activations in the last bits, and so the fit:
    # they are part of the key (an sdpa-era cache must not stand in for an eager run)
    params = {"model": model_name, "point": point, "max_length": max_length, "texts": fingerprint(texts),
              "n_texts": len(texts), "attn": getattr(model.config, "_attn_implementation", None),
              "dtype": str(next(model.parameters()).dtype), "max_rows": MAX_ROWS}

    def compute() -> dict:
        got = capture(model, tok, texts, [point], reduce="tokens", stats=True, max_rows=MAX_ROWS, max_length=max_length)
        p = got["points"][0]
        return {"rows": got[p].float(), **{f"stats.{k}": v for k, v in got["stats"][p].to_dict().items()}}

    d = cached("activation-reference", params, compute, verbose=False)
    stats = StreamingGaussian.from_dict({k[6:]: v for k, v in d.items() if k.startswith("stats.")})
    ref = Reference.from_activations(d["rows"].float(), name or f"{point} activations")
    ref.gaussian = stats.fit("ledoit-wolf" if stats.n < 10 * stats.dim else "none")

    def embed_text(text: str) -> torch.Tensor:  # the `text` prior in activation space: the text's own states
        got = capture(model, tok, [text], [point], reduce="trajectory", max_length=max_length, progress=False)
        return got[got["points"][0]][0].float()  # [T, d]
    ref.embed_text = embed_text
    return ref


def _references(config: TrainConfig, model, tok, point: str, texts_fn) -> Reference:
    if point == "tokens":
        return Reference.from_embeddings(model, tok)
    return activation_reference(model, tok, texts_fn(config.task), point, model_name=config.model,
                                max_length=config.max_length)


def _draw(prior: str, params: dict, n: int, ref: Reference, g: torch.Generator, config, model, tok, point, texts_fn):
    params = dict(params)
    from priorlib.priors import parse_params
    strings = {k: v for k, v in params.items() if isinstance(v, str)}
    typed = {**{k: v for k, v in params.items() if not isinstance(v, str)},
             **{f: getattr(parse_params(prior, strings), f) for f in strings}}
    if prior == "interpolation" and typed.get("other") is None:
        if point == "tokens":
            raise ValueError("the interpolation prior needs an activation space (set soft_space or use deep prompts)")
        typed["other"] = activation_reference(model, tok, texts_fn(config.interpolate_with), point,
                                              model_name=config.model, max_length=config.max_length)
    return sample_prior(prior, n, ref, g, **typed)


def initial_prompts(config: TrainConfig, model, tok, *, texts_fn=None) -> tuple[torch.Tensor | None, dict | None, dict]:
    """``(soft_init [n, d] | None, {layer: [n, d]} | None, info)`` drawn with ``torch.Generator(seed)``."""
    from priorlib.tasks import domain_texts
    texts_fn = texts_fn or (lambda domain: domain_texts(domain, config.reference_texts))
    g = torch.Generator().manual_seed(config.seed)
    info: dict = {"prior": config.prior}
    soft_init = deep_init = None
    n = config.n_tokens
    if config.method.value == "soft" or config.token_prompt:
        point = config.soft_space
        ref = Reference(torch.zeros(1, arch.d_model(model)), "none") if config.prior in DATA_FREE and point == "tokens" \
            else _references(config, model, tok, point, texts_fn)
        soft_init = _draw(config.prior, config.prior_params, n, ref, g, config, model, tok, point, texts_fn)
        info["soft_space"] = point
    if config.method.value == "deep":
        prior = config.deep_prior or config.prior
        params = config.deep_prior_params if config.deep_prior_params is not None else config.prior_params
        deep_init = {}
        for layer in arch.resolve_layers(model, config.deep_layers):
            point = f"layers.{layer}.resid_pre"
            ref = Reference(torch.zeros(1, arch.d_model(model)), "none") if prior in DATA_FREE \
                else _references(config, model, tok, point, texts_fn)
            deep_init[layer] = _draw(prior, params, n, ref, g, config, model, tok, point, texts_fn)
        info["deep_prior"] = prior
    return soft_init, deep_init, info
