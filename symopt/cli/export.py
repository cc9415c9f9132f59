"""``symopt export RUN --rank N -o FILE.py [--torch]``: a hall-of-fame entry as a standalone optax module
(with ``--torch``, a PyTorch module: a ``torch.optim.Optimizer`` class).

The module is :func:`symopt.export_source` of the entry's simplified program,
checked again against the program as found (:mod:`symopt.symbolic.equivalence`):
a run written before simplification was checked that strictly may hold a
simplified form that computes something else, and then the program as found
is simplified anew. ``--as-found`` exports the program as the search found it;
``--derived`` the derived form saved by ``symopt derive RUN --rank N``
(:mod:`symopt.tools.derive`), which must start from the entry's program as found.
"""

from __future__ import annotations

import argparse
import keyword
import pathlib
import sys

from symopt.export import export_source
from symopt.tools.inspect_run import entry_program
from symopt.storage.run_dir import RunError, read_derived, read_hall_of_fame
from symopt.symbolic.equivalence import mismatch
from symopt.symbolic.simplify import simplify


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory written by `symopt search` (holds hall_of_fame.json)")
    parser.add_argument("--rank", type=int, default=1, help="hall-of-fame rank, 1-based (default: 1)")
    parser.add_argument("-o", "--output", required=True, help="the module to write (FILE.py)")
    parser.add_argument("--name", default=None, help="the optimizer's name (default: found_rankN, with --torch "
                                                     "the class FoundRankN)")
    parser.add_argument("--torch", action="store_true", help="write a PyTorch module (a torch.optim.Optimizer "
                                                             "class, needing only torch) instead of an optax one")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--as-found", action="store_true", help="export the program as found, not simplified")
    form.add_argument("--derived", action="store_true", help="export the derived form written by "
                                                             "`symopt derive RUN --rank N`")


def _trusted(simplified, found, rank: int):
    """``simplified`` when it computes what ``found`` computes, else ``found`` simplified anew (with a note)."""
    differs = mismatch(found, simplified) if simplified.args == found.args else "other arguments"
    if differs is None:
        return simplified
    print(f"symopt export: rank {rank}: the run's simplified program differs from the program as found "
          f"({differs}); simplifying the program as found again", file=sys.stderr)
    return simplify(found)


def _derived(run: str, rank: int, found):
    """The derived program saved for rank ``rank``; a RunError when it derives another program than ``found``."""
    saved = read_derived(run, rank)
    if saved.start != found:
        raise RunError(f"{run}: derived_rank{rank}.json derives another program than rank {rank}'s "
                       f"(the run has changed); run `symopt derive {run} --rank {rank}` again")
    return saved.derived


def main(args: argparse.Namespace) -> int:
    try:
        if args.name is not None and (not args.name.isidentifier() or keyword.iskeyword(args.name)):
            raise RunError(f"--name {args.name!r} is not a valid Python function name")
        data = read_hall_of_fame(args.run)
        program = entry_program(data, args.rank, args.run, simplified=not getattr(args, "as_found", False))
        if getattr(args, "derived", False):
            program = _derived(args.run, args.rank, entry_program(data, args.rank, args.run, simplified=False))
        elif not getattr(args, "as_found", False):
            program = _trusted(program, entry_program(data, args.rank, args.run, simplified=False), args.rank)
        torch = getattr(args, "torch", False)
        name = args.name or (f"FoundRank{args.rank}" if torch else f"found_rank{args.rank}")  # the rank is good here
        source = export_source(program, name, framework="torch" if torch else "optax")
    except (RunError, ValueError) as e:
        print(f"symopt export: {e}", file=sys.stderr)
        return 1
    out = pathlib.Path(args.output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(source, encoding="utf-8")
    except OSError as e:
        print(f"symopt export: cannot write {str(out)!r}: {e}", file=sys.stderr)
        return 1
    made = (f"{name}(params, lr=1e-3, ...), a torch.optim.Optimizer" if torch
            else f"{name}(learning_rate=1e-3, ...) -> optax.GradientTransformationExtraArgs")
    print(f"wrote {out}: {made} (rank {args.rank} of {args.run})")
    print(str(program).rstrip("\n"))
    return 0
