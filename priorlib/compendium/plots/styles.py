"""One look per series when a figure has many: colour for one factor (the prior, the arm), line style
and marker for the other (learning rate, seed), so 12 runs never share a colour-and-style."""
from __future__ import annotations

import dataclasses

import seaborn as sns

LINESTYLES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2))]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def colours(n: int) -> list:
    """``n`` distinct colours: tab10 up to 10, evenly spaced hues beyond (tab10 repeats after 10)."""
    return list(sns.color_palette("tab10", n)) if n <= 10 else list(sns.color_palette("husl", n))


def series_styles(groups: list, variants: list) -> list[dict]:
    """Per series ``i``: ``{"color", "linestyle", "marker"}``, the colour from ``groups[i]`` and the line
    style (then the marker, past the line styles) from ``variants[i]``, in order of first appearance.
    Distinct ``(group, variant)`` pairs get distinct looks (up to 6 x 8 variants per colour)."""
    g = list(dict.fromkeys(groups))
    v = list(dict.fromkeys(variants))
    cols = dict(zip(g, colours(len(g))))
    looks = []
    for a, b in zip(groups, variants):
        k = v.index(b)
        looks.append({"color": cols[a], "linestyle": LINESTYLES[k % len(LINESTYLES)],
                      "marker": MARKERS[(k // len(LINESTYLES)) % len(MARKERS)] if len(v) > len(LINESTYLES)
                      else MARKERS[k % len(MARKERS)]})
    return looks


def run_factors(configs: list, label_fn) -> tuple[list, list, str]:
    """``(groups, variants, legend title)`` for runs: the group is ``label_fn`` of the config with its
    learning rate and seed set to the first run's (so ``"isotropic seed 2"`` and ``"isotropic seed 0"``
    are one group), the variant the ``(lr, seed)`` pair, named in the title by what varies. If that
    does not tell the labels apart, every label is its own group (its own colour)."""
    labels = [label_fn(c) for c in configs]
    first = configs[0]
    try:
        groups = [label_fn(dataclasses.replace(c, lr=first.lr, seed=first.seed)) for c in configs]
        variants = [(c.lr, c.seed) for c in configs]
    except (TypeError, ValueError, AttributeError):
        groups = variants = None
    if groups is None or len(set(zip(groups, variants))) < len(set(labels)) or len(set(groups)) == len(groups):
        return labels, [0] * len(labels), ""
    varying = [name for name, k in (("learning rate", 0), ("seed", 1)) if len({x[k] for x in variants}) > 1]
    priors = [getattr(c, "prior", None) for c in configs]
    by_prior = len(set(zip(groups, priors))) == len(set(groups)) == len(set(priors))
    return groups, variants, f"colour: {'prior' if by_prior else 'run group'}; line style: " + " and ".join(varying)


def split_title(title: str) -> tuple[str, str]:
    """``"isotropic lr=0.01 seed=0"`` -> ``("isotropic", "lr=0.01 seed=0")``: the words without ``=``
    (the prior) and the ``key=value`` settings."""
    words = title.split()
    return (" ".join(w for w in words if "=" not in w), " ".join(w for w in words if "=" in w))
