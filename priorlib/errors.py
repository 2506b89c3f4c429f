"""Errors meant for the user: the command line prints their one-line message, never a traceback."""
from __future__ import annotations


class PriorlibError(RuntimeError):
    """Base of priorlib's own run-time errors (bad input is a ``ValueError`` or an ``OSError``)."""


class LockedError(PriorlibError):
    """Another process holds a run folder's (or run-store key's) exclusive lock."""


class TrainingDiverged(PriorlibError):
    """The loss, a gradient or a prompt became non-finite; training stopped, good checkpoints kept."""


class NotInBank(PriorlibError, LookupError):
    """A run the evidence bank lacks, asked for where nothing may train (``priorlib book --bank-only``)."""
