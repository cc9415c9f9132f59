"""``symopt simplify FILE``: print a program file's simplified form."""

from __future__ import annotations

import argparse
import sys

from symopt.programs.errors import ProgramError
from symopt.programs.parse import parse, read_text


def main_simplify(args: argparse.Namespace) -> int:
    """Read ``args.file``, print the simplified program; errors name the file and line (exit status 1)."""
    from symopt.symbolic.simplify import eliminate_dead_code, simplify

    name = args.file
    try:
        text = sys.stdin.read() if name == "-" else read_text(name)
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
        print(simplify(program, timeout=getattr(args, "timeout", 10.0)), end="")
    return 0
