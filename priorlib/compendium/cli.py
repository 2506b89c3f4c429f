"""``priorlib`` command line: ``priorlib {train,book,sweep,bench,models}``.

Each sub-command lives in its own module and exposes ``add_arguments(parser)`` and ``run(args)``;
this file only wires them together, importing lazily so ``priorlib --help`` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "train": ("priorlib.train_cli", "train a soft or deep prompt from a prior"),
    "book": ("priorlib.compendium.book", "execute the notebooks with papermill and build the jupyter-book"),
    "sweep": ("priorlib.compendium.sweep", "run one notebook over a grid of parameters"),
    "bench": ("priorlib.compendium.bench", "benchmark priorlib against PEFT prompt tuning in one process"),
    "models": ("priorlib.models_cli", "list the model registry"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="priorlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
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
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        # bad input: one clear line, no traceback
        print(f"priorlib {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
