"""``symopt simplify FILE``: print a program file's simplified form."""

from __future__ import annotations

import argparse
import sys

from symopt.programs.errors import ProgramError
from symopt.programs.parser import parse, read_stream, read_text
from symopt.programs.liveness import eliminate_dead_code
from symopt.config.space import SECONDS
from symopt.symbolic.simplify import simplify


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="program file (def train(...): ... return update, ...), or - for stdin")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds of SymPy (default: 10)")
    parser.add_argument("--dead-code-only", action="store_true", help="only remove dead statements")


def main(args: argparse.Namespace) -> int:
    """Read ``args.file``, print the simplified program; errors name the file and line (exit status 1)."""
    name = args.file
    timeout = getattr(args, "timeout", 10.0)
    if timeout not in SECONDS:  # NaN is in no range
        print(f"symopt simplify: --timeout {timeout}: give seconds > 0 and <= {SECONDS.high:g}", file=sys.stderr)
        return 1
    try:
        text = read_stream(sys.stdin.buffer, "<stdin>") if name == "-" else read_text(name)
    except (OSError, ValueError) as e:
        print(f"symopt simplify: {e if isinstance(e, ValueError) else f'{name}: cannot read: {e.strerror}'}",
              file=sys.stderr)
        return 1
    try:
        program = parse(text, "<stdin>" if name == "-" else name)
    except ProgramError as e:
        print(f"symopt simplify: {e}", file=sys.stderr)
        return 1
    if getattr(args, "dead_code_only", False):
        print(eliminate_dead_code(program), end="")
    else:
        print(simplify(program, timeout=timeout), end="")
    return 0
