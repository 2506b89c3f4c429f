"""Result tables as the book shows them: one formatting rule for every chapter.

- numbers to three significant figures (integers as they are);
- readable headers (``final_val_loss`` -> "Final validation loss"), no pandas index;
- a mean over seeds as ``0.512 ± 0.0131 (n=3)``, and for a single seed ``0.512 — (n=1)``, never "± 0.0";
- wide tables scroll inside the page's column (the ``priorlib-table`` wrapper; CSS in
  ``book/_static/priorlib.css``).

:func:`result_table` wraps a DataFrame in :class:`ResultFrame`, a DataFrame whose notebook display is
this formatting; its data (what ``results.json`` stores) is left untouched.

    from priorlib.compendium.tables import result_table, mean_sd
    result_table(df)                    # the last expression of a cell: a readable table
    mean_sd([0.51, 0.52, 0.50])         # '0.51 ± 0.01 (n=3)'
"""
from __future__ import annotations

import html
import math
import re
from numbers import Integral, Real

import pandas as pd

SIG = 3
DASH = "—"

#: words for the parts of snake_case column names (applied part by part)
WORDS = {
    "val": "validation", "nn": "nearest-token", "l2": "L2", "cos": "cosine", "f1": "F1", "hdr": "HDR",
    "lr": "lr", "kl": "KL", "em": "EM", "pca": "PCA", "bic": "BIC", "id": "id", "s": "s", "sd": "sd",
    "n": "n", "mahalanobis": "Mahalanobis", "squad": "SQuAD", "math": "MATH", "vae": "VAE",
}
HEADERS = {
    "median_s_per_step": "Median s / step", "exact_match": "Exact match", "final_exact_match": "Final exact match",
    "share_in_hdr": "Share in HDR", "lr": "lr", "seed": "Seed", "moved_l2": "Moved (L2)", "seeds": "Seeds", "n": "n",
}


def sig(x, digits: int = SIG) -> str:
    """``x`` to ``digits`` significant figures (``0.0123``, ``12300``, ``1.23e-07`` only when needed); a value
    exact at that precision as written (``0.01``, ``2.5``), integers as they are, ``—`` for a missing value;
    anything else as ``str``."""
    if x is None:
        return DASH
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, Integral):
        return str(int(x))
    if isinstance(x, Real):
        x = float(x)
        if math.isnan(x):
            return DASH
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        if x == 0:
            return "0"
        if x.is_integer() and abs(x) < 10 ** digits:
            return str(int(x))
        v = float(f"{x:.{digits}g}")
        if v == x:  # exact at this precision (a learning rate, a weight): as written, no padding zeros
            return f"{x:g}"
        exp = math.floor(math.log10(abs(v)))
        if exp < -4 or abs(v) >= 1e7:
            return f"{v:.{digits - 1}e}"
        if exp >= digits - 1:
            return str(int(v))
        return f"{v:.{digits - 1 - exp}f}"
    return str(x)


def mean_sd(values=None, *, mean=None, sd=None, n=None, digits: int = SIG) -> str:
    """One cell for a mean over seeds: ``values`` (a sequence), or ``mean``, ``sd`` and ``n``.
    A single seed (or no spread measured) reads ``0.512 — (n=1)``."""
    if values is not None:
        vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
        n = len(vals)
        if not n:
            return DASH + " (n=0)"
        mean = sum(vals) / n
        sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else None
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return DASH + (f" (n={n})" if n is not None else "")
    single = (n is not None and n <= 1) or sd is None or (isinstance(sd, float) and math.isnan(sd))
    spread = DASH if single else f"± {sig(sd, digits)}"
    return f"{sig(mean, digits)} {spread}" + (f" (n={n})" if n is not None else "")


def header(name) -> str:
    """``final_val_loss`` -> ``Final validation loss``; a name already in words is left alone."""
    if isinstance(name, tuple):
        return " · ".join(header(p) for p in name if str(p))
    name = str(name)
    if name in HEADERS:
        return HEADERS[name]
    if "_" not in name and not name.islower():
        return name
    parts = [WORDS.get(p, p) for p in re.split(r"_+", name) if p]
    if not parts:
        return name
    text = " ".join(parts)
    return text[0].upper() + text[1:]


def _cell(x, digits: int) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, (list, tuple)):
        return ", ".join(_cell(v, digits) for v in x)
    try:
        if pd.isna(x):
            return DASH
    except (TypeError, ValueError):
        pass
    return sig(x, digits) if isinstance(x, (Real, Integral)) else str(x)


def formatted(df: pd.DataFrame, digits: int = SIG) -> pd.DataFrame:
    """``df`` as strings: readable headers, numbers to ``digits`` significant figures, no index."""
    df = pd.DataFrame(df)
    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        df = df.reset_index()
    out = pd.DataFrame({header(c): [_cell(v, digits) for v in df[c]] for c in df.columns})
    return out


def to_html(df: pd.DataFrame, digits: int = SIG) -> str:
    """The book's table: :func:`formatted`, in a wrapper that scrolls sideways when the table is wider
    than the column."""
    f = formatted(df, digits)
    head = "".join(f"<th>{html.escape(str(c), quote=False)}</th>" for c in f.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v, quote=False)}</td>" for v in row) + "</tr>"
                   for row in f.itertuples(index=False))
    return (f'<div class="priorlib-table"><table class="dataframe priorlib-result-table">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def to_markdown(df: pd.DataFrame, digits: int = SIG) -> str:
    f = formatted(df, digits)
    def esc(s):
        return str(s).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(esc(c) for c in f.columns) + " |", "|" + "---|" * len(f.columns)]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in f.itertuples(index=False)]
    return "\n".join(lines)


class ResultFrame(pd.DataFrame):
    """A DataFrame displayed the book's way (:func:`to_html`); every operation on it gives a plain DataFrame,
    and its data is exactly the wrapped frame's. ``display`` (see :func:`result_table`) is what is shown
    instead, when the data's own text is kept as it was (e.g. for ``results.json``)."""

    _metadata = ["_display"]
    _display = None

    @property
    def _constructor(self):
        return pd.DataFrame

    def _shown(self) -> pd.DataFrame:
        return self._display if self._display is not None else pd.DataFrame(self)

    def _repr_html_(self):
        return to_html(self._shown())

    def _repr_markdown_(self):
        return to_markdown(self._shown())

    def __repr__(self):
        return formatted(self._shown()).to_string(index=False)


def result_table(df: pd.DataFrame, display: pd.DataFrame | None = None) -> ResultFrame:
    """``df`` as a :class:`ResultFrame`: same data, the book's display; ``display``, when given, is the table
    shown in its place (same rows, e.g. :func:`summary` of the rows ``df`` summarises)."""
    out = ResultFrame(pd.DataFrame(df))
    if display is not None:
        out._display = pd.DataFrame(display)
    return out


def summary(rows: pd.DataFrame, by, metrics, digits: int = SIG, n_column: str | None = "seeds") -> ResultFrame:
    """Per group of ``by``: each metric as :func:`mean_sd` over the group's rows (n per cell, "—" for one
    seed), and the group size in ``n_column``."""
    metrics = [m for m in metrics if m in rows]
    groups = rows.groupby(list(by), sort=True)
    out = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        for m in metrics:
            vals = g[m].dropna()
            row[m] = mean_sd(mean=float(vals.mean()) if len(vals) else None,
                             sd=float(vals.std(ddof=1)) if len(vals) > 1 else None, n=len(vals), digits=digits)
        if n_column:
            row[n_column] = len(g)
        out.append(row)
    return ResultFrame(pd.DataFrame(out, columns=[*by, *metrics, *([n_column] if n_column else [])]))
