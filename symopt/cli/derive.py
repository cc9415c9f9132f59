"""``symopt derive FILE|RUN``: a program shortened step by step, each step checked by training.

From a program file the fitness is ``--config``'s stage (default: ``quick``'s
search stage); from a run directory (``--rank N`` of its hall of fame, the
program as found) it is the run's own configuration, and the derivation is
saved as ``RUN/derived_rankN.json`` for ``symopt export RUN --derived``.
See :mod:`symopt.tools.derive` for the steps and the tolerance.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from symopt.programs.errors import ProgramError
from symopt.programs.parser import parse, read_text
from symopt.tools.derive import derive
from symopt.storage.durable import Busy, DirLock, WriteError
from symopt.storage.run_dir import CONFIG_NAME, RunError, derived_path, read_config, read_hall_of_fame, write_derived


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a program file (def train(...): ...) or a run directory of `symopt search`")
    parser.add_argument("--rank", type=int, default=1, help="hall-of-fame rank of a run, 1-based (default: 1)")
    parser.add_argument("--config", default=None, help="search configuration whose stage gives the fitness "
                                                       "(default: the run's, or quick for a file)")
    parser.add_argument("--stage", default=None, help="stage name or 0-based index (default: the search stage)")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="fitness a step may lose against the start (default: twice the paired noise, "
                             "measured on the start against itself perturbed)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per task (default: the stage's)")
    parser.add_argument("--validate", action="store_true", help="also score the start and the derived program on "
                                                                "the configuration's validation tasks")
    parser.add_argument("--json", action="store_true", help="print the derivation as JSON")


def _stage(value: str | None) -> int | str:
    if value is None:
        return 0
    return int(value) if value.lstrip("-").isdigit() else value


def main(args: argparse.Namespace) -> int:
    lock = DirLock(args.source)
    try:
        return _derive(args, pathlib.Path(args.source), lock)
    finally:
        lock.release()


def _derive(args: argparse.Namespace, source: pathlib.Path, lock: DirLock) -> int:
    saved = None
    try:
        if source.is_dir():
            from symopt.tools.inspect_run import entry_program

            program = entry_program(read_hall_of_fame(source), args.rank, source, simplified=False)
            config = args.config or read_config(source).resolved(str(source / CONFIG_NAME))
            saved = derived_path(source, args.rank)
            lock.acquire()  # before anything trains: a search or another derive writing the run is refused now
        else:
            program = parse(read_text(source), str(source))
            config = args.config or "quick"
        progress = None if args.json else (lambda s: print(f"  step {s.number}: {s.change} "
                                                          f"({len(s.program.body)} statements, fitness "
                                                          f"{s.fitness:+.4f}, {s.check})", file=sys.stderr))
        derivation = derive(program, config, stage=_stage(args.stage), tolerance=args.tolerance, steps=args.steps,
                            validate=args.validate, progress=progress)
    except (RunError, ProgramError, ValueError, Busy) as e:
        print(f"symopt derive: {e}", file=sys.stderr)
        return 1
    except WriteError as e:  # the lock file: derive saves its derivation in the run directory
        print(f"symopt derive: {e.args[0].split('; ')[0]}; derive saves derived_rank{args.rank}.json there: make "
              f"{str(source)!r} writable, or derive a program file (symopt inspect {source} shows them)",
              file=sys.stderr)
        return 1
    except OSError as e:
        print(f"symopt derive: {args.source}: cannot read: {e.strerror}", file=sys.stderr)
        return 1
    data = derivation.as_json()
    if saved is not None:
        try:
            write_derived(source, args.rank, data)
        except OSError as e:
            print(f"symopt derive: {e}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        print(derivation.table())
        if saved is not None:
            print(f"\nsaved {saved} (symopt export {args.source} --rank {args.rank} --derived -o FILE.py)")
    return 0
