"""priorlib: priors for prompt tuning on a frozen causal LM.

Small modules, one concern each:

- ``priorlib.models``   named model registry (offline GGUF -> HF folder, hub for the paper's model)
- ``priorlib.data``     SQuAD v1.1, DeepMind MATH arithmetic, web text standing in for C4
- ``priorlib.hooks``    named hook points (``embed``, ``layers.{i}.resid_post``), capture, early stop
- ``priorlib.stats``    streaming mean / covariance (float64, Chan's parallel update)
- ``priorlib.prompts``  soft and deep ("cut" / "carry") prompts around a frozen model
- ``priorlib.priors``   registry of initial distributions ``(generator, shape, reference) -> tensor``
- ``priorlib.metrics``  where prompts sit relative to a reference; SQuAD EM/F1, MATH accuracy
- ``priorlib.trainer``  AdamW trainer with callbacks, atomic safetensors checkpoints, resume
"""
import os as _os

# With more busy threads than cores (a notebook next to a test run on a 2-core laptop), OpenMP's
# default spin-waiting made greedy decoding 7-9x slower here; passive waiting costs little alone.
# It only takes effect if torch has not been imported yet; an explicit setting always wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
