"""``symopt inspect RUN``: a run directory's hall of fame as a plain-text table (:mod:`symopt.tools.inspect_run`)."""

from __future__ import annotations

import argparse
import sys

from symopt.tools.inspect_run import table
from symopt.storage.run_dir import LINEAGE_NAME, RunError, has_file, read_hall_of_fame, read_lineage


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory written by `symopt search` (holds hall_of_fame.json)")
    parser.add_argument("--brief", action="store_true", help="one line per entry: no program text under the rows")


def main(args: argparse.Namespace) -> int:
    try:
        data = read_hall_of_fame(args.run)
        if not data.entries:
            print(f"run {args.run}: the hall of fame is empty")
            return 0
        lineage = read_lineage(args.run) if has_file(args.run, LINEAGE_NAME) else None
        print(f"hall of fame of {args.run} ({len(data.entries)} entries)\n")
        print(table(data, brief=getattr(args, "brief", False), lineage=lineage))
    except RunError as e:
        print(f"symopt inspect: {e}", file=sys.stderr)
        return 1
    return 0
