"""One module per notebook, named after it: ``chapters/02_lr_priors.py`` is the logic behind
``notebooks/02_lr_priors.ipynb``. Load one with :func:`priorlib.compendium.chapter`."""
