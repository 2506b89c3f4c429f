"""priorlib: priors for prompt tuning on a frozen causal LM. Where do prompt-tuned embeddings end up?

    import priorlib
    config = priorlib.TrainConfig(model="smollm2-135m", task="squad", prior="vocab-sample", lr=1e-2, steps=150)
    run = priorlib.train(config)                 # a finished run is reused from the run store
    run.metrics["final"]["f1"], run.prompts()["soft"].shape      # 55.8, torch.Size([20, 576])

The front door (everything else lives in the modules below):

- ``TrainConfig``, ``train``, ``Run``            one run: its config, training it, reading it back
- ``load_model``, ``register_model``, ``ModelSpec``  named models; register your own Hugging Face causal LM
- ``Example``, ``TaskSpec``, ``register_task``    your own (prompt, answer) task and scorer
- ``PromptedLM``                                 soft and deep prompts around a frozen model
- ``sample_prior``, ``Reference``                where prompts start: the prior registry and its reference cloud
- ``Trace``, ``capture``                         named hook points, and what to keep of a forward pass

Modules, one concern each: ``models``, ``data``, ``tasks``, ``hooks``, ``activations``, ``projection``, ``cache``, ``stats``, ``prompts``, ``priors``,
``initial`` (a run's first prompts), ``regularisers``, ``trainer``, ``runstore``, ``metrics``. The machinery
that runs the notebooks and builds the book is ``priorlib.compendium``; the library never imports it.
"""
import importlib as _importlib
import os as _os

# With more busy threads than cores (a notebook next to a test run on a 2-core laptop), OpenMP's
# default spin-waiting made greedy decoding 7-9x slower here; passive waiting costs little alone.
# It only takes effect if torch has not been imported yet; an explicit setting always wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

# name -> module; imported on first use, so ``import priorlib`` (and ``priorlib --help``) stays instant
_EXPORTS = {
    "TrainConfig": "priorlib.config", "train": "priorlib.runstore", "Run": "priorlib.runstore",
    "load_model": "priorlib.models", "register_model": "priorlib.models", "ModelSpec": "priorlib.models",
    "Example": "priorlib.data", "TaskSpec": "priorlib.tasks", "register_task": "priorlib.tasks",
    "PromptedLM": "priorlib.prompts", "sample_prior": "priorlib.priors", "Reference": "priorlib.priors",
    "Trace": "priorlib.hooks", "capture": "priorlib.activations",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'priorlib' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
