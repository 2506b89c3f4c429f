"""Shared figure captions (priorlib.compendium.captions): known answers on synthetic runs."""
from types import SimpleNamespace

import pandas as pd
import pytest

from priorlib.compendium import captions


class Run:
    def __init__(self, losses, curve, plateau, eval_size=200, plateau_eval_size=64):
        self.config = SimpleNamespace(prior="p", seed=0, eval_size=eval_size, plateau_eval_size=plateau_eval_size)
        self.metrics = {"plateaued": plateau}
        self._h = pd.DataFrame({"step": range(len(losses)), "loss": losses})
        self._e = pd.DataFrame({"step": [50 * i for i in range(len(curve))], "plateau_loss": curve})

    def history(self):
        return self._h

    def evals(self):
        return self._e


RUNS = [Run([3.0] * 5 + [1.0] * 5, [2.0, 1.5, 0.9], False), Run([2.0] * 10, [2.0, 1.9, 1.8], True)]


def test_training_loss_caption_known_answer():
    cap = captions.training_loss(RUNS, "on MATH")
    assert "one curve per run on MATH" in cap and "end between 1.000 and 2.000" in cap
    assert "1 of 2 runs stopped at the step cap" in cap


def test_learning_curve_caption_counts_runs_reaching_the_target():
    cap = captions.learning_curve(RUNS, target=1.0)
    assert "first 64 held-out questions" in cap and "between 0.900 and 1.800" in cap
    assert "target 1.000, reached by 1 of 2 runs" in cap
    assert "Dashed" not in captions.learning_curve(RUNS)


def test_no_runs_is_an_error():
    with pytest.raises(ValueError, match="no runs"):
        captions.training_loss([])
