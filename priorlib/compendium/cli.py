"""``priorlib`` command line: ``priorlib {train,book,sweep,bench,models}``.

Each sub-command lives in its own module and exposes ``add_arguments(parser)`` and ``run(args)``;
this file only wires them together, importing lazily so ``priorlib --help`` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys

# argparse takes "-1e-3" for an option (it only knows "-1" and "-.5" as numbers): join such a value to its flag
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.IGNORECASE)


def _join_negative_values(argv: list[str]) -> list[str]:
    out: list[str] = []
    for arg in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE_NUMBER.match(arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (``priorlib train: error: ...``), exit status 2, like every other error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

from ..errors import PriorlibError

COMMANDS = {
    "train": ("priorlib.train_cli", "train a soft or deep prompt from a prior"),
    "book": ("priorlib.compendium.book", "execute the notebooks with papermill and build the jupyter-book"),
    "sweep": ("priorlib.compendium.sweep", "run one notebook over a grid of parameters"),
    "evidence": ("priorlib.compendium.evidence_cli", "compute the book's runs into the evidence bank, or report its status"),
    "bench": ("priorlib.compendium.bench", "benchmark priorlib against PEFT prompt tuning in one process"),
    "bench-gpu": ("priorlib.compendium.bench_gpu", "the same benchmarks on a GPU, random weights of the models' shapes"),
    "models": ("priorlib.models_cli", "list the model registry"),
}


def main(argv: list[str] | None = None) -> int:
    argv = _join_negative_values(list(sys.argv[1:] if argv is None else argv))
    parser = _OneLineParser(prog="priorlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    if argv and argv[0] in COMMANDS:  # import only the module of the command asked for
        names = [argv[0]]
    else:
        names = []
        for name, (_, help_) in COMMANDS.items():
            sub.add_parser(name, help=help_)
    for name in names:
        module = importlib.import_module(COMMANDS[name][0])
        p = sub.add_parser(name, help=COMMANDS[name][1], description=COMMANDS[name][1])
        module.add_arguments(p)
        p.set_defaults(_module=module)
    args = parser.parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except (ValueError, OSError, PriorlibError) as err:
        # bad input, a file the OS refuses, a locked folder, a diverged run: one clear line, no traceback
        print(f"priorlib {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None and err.strerror:  # name the path, not errno
        where = f"{err.filename}" + (f" -> {err.filename2}" if err.filename2 else "")
        return f"{where}: {err.strerror}"
    return " ".join(str(err).split())


if __name__ == "__main__":
    raise SystemExit(main())
