"""Figure helpers (seaborn / matplotlib): each returns a ``matplotlib.figure.Figure`` with labelled axes."""
