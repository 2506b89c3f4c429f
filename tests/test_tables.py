"""The one result-table helper: three significant figures, readable headers, no index, n per cell."""
from __future__ import annotations

import pandas as pd

from priorlib.compendium import tables as T
from priorlib.compendium.experiments import quality_table


def test_significant_figures():
    assert [T.sig(x) for x in (0.123456, 12345.6, 0.000123456, 3, 2.0, float("nan"), None, 1234.5)] == \
        ["0.123", "12300", "0.000123", "3", "2", "—", "—", "1230"]
    assert T.sig(2.5) == "2.5" and T.sig(0.01) == "0.01" and T.sig(1.234e-7) == "1.23e-07"


def test_mean_sd_has_n_and_a_dash_for_one_seed():
    assert T.mean_sd([1.0, 2.0, 3.0]) == "2 ± 1 (n=3)"
    assert T.mean_sd([0.5123]) == "0.512 — (n=1)"
    assert T.mean_sd(mean=0.5123, sd=0.0, n=1) == "0.512 — (n=1)"
    assert "± 0.0" not in T.mean_sd([0.2])


def test_headers_are_words():
    assert T.header("final_val_loss") == "Final validation loss"
    assert T.header("median_nn_l2") == "Median nearest-token L2"
    assert T.header("Already Fine") == "Already Fine"


def test_quality_table_numbers_unchanged_and_display_readable():
    rows = pd.DataFrame({"prior": ["a", "a", "b"], "lr": [0.01, 0.01, 0.01], "seed": [0, 1, 0],
                         "final_val_loss": [1.23456, 1.34567, 2.5], "final_f1": [10.0, 12.0, 5.0]})
    q = quality_table(rows)
    assert list(q.columns) == ["prior", "lr", "final_val_loss", "final_f1", "seeds"]
    assert list(q["final_val_loss"]) == ["1.29 ± 0.079", "2.5 ± 0.0"]  # the data (results.json) as before
    assert list(q["seeds"]) == [2, 1]
    html = q._repr_html_()
    assert "1.29 ± 0.0786 (n=2)" in html and "2.5 — (n=1)" in html and "± 0.0<" not in html  # what is shown
    assert "<th>Final validation loss</th>" in html and "<th>Final F1</th>" in html
    assert 'class="priorlib-table"' in html and "<th></th>" not in html  # scroll wrapper, no index
    assert q.to_dict("records")[0]["prior"] == "a"  # its data stays a plain table for results.json
    assert type(q[["prior"]]) is pd.DataFrame
