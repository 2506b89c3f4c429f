"""priorlib.metrics.answers: answer tokens against their question, on planted geometry."""
import numpy as np

from priorlib.metrics.answers import answer_vs_question


def test_answer_vs_question_geometry():
    rng = np.random.default_rng(0)
    rows, text, pos, roles = [], [], [], []
    for i in range(12):
        q = rng.normal(size=8)
        role = np.array([0] * 10 + [1] * 3 + [0] * 5 + [3] + [2] * 4)
        x = rng.normal(size=(len(role), 8))
        x[role == 2] = q + 0.1 * rng.normal(size=(4, 8))
        x[role == 1] = q + 0.3 * rng.normal(size=(3, 8))  # answers close to the question
        rows.append(x)
        text.append(np.full(len(role), i))
        pos.append(np.arange(len(role)))
        roles.append(role)
    r = answer_vs_question(np.concatenate(rows), np.concatenate(text), np.concatenate(pos), roles)
    assert r["n_prompts"] == 12 and r["share_answer_closer"] == 1.0 and r["median_ratio"] < 0.5
