"""Program text to :class:`Program`, through Python's ``ast`` with a whitelist.

The text is only ever parsed: no node of it reaches ``eval``, ``exec``,
``compile`` to code objects, or ``pickle``. Anything outside the language
raises :class:`ProgramError` naming the line, the column and the problem.
"""

from __future__ import annotations

import ast
import os
import warnings
from typing import BinaryIO

from symopt.programs.checker import check
from symopt.programs.errors import ProgramError
from symopt.programs.program import Assign, Call, Const, Expr, Program, Var

MAX_CHARS = 100_000
MAX_DEPTH = 200
MAX_STATEMENTS = 1_000
MAX_FILE_BYTES = 2**20
"""Most bytes read from a program or configuration file (a program is at most MAX_CHARS characters)."""

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_NODE_NAMES = {
    ast.Attribute: "attribute access", ast.Subscript: "subscripts", ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions", ast.SetComp: "comprehensions", ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions", ast.IfExp: "conditional expressions", ast.Compare: "comparisons",
    ast.BoolOp: "boolean operators", ast.Starred: "starred expressions", ast.Await: "await",
    ast.Yield: "yield", ast.YieldFrom: "yield", ast.NamedExpr: "assignment expressions",
    ast.JoinedStr: "f-strings", ast.List: "lists", ast.Dict: "dicts", ast.Set: "sets",
    ast.Import: "imports", ast.ImportFrom: "imports", ast.For: "loops", ast.While: "loops",
    ast.AsyncFor: "loops", ast.If: "if statements", ast.With: "with statements",
    ast.Try: "try statements", ast.ClassDef: "classes", ast.FunctionDef: "nested functions",
    ast.AsyncFunctionDef: "async functions", ast.Global: "global statements",
    ast.Nonlocal: "nonlocal statements", ast.Delete: "del statements", ast.Raise: "raise",
    ast.Assert: "assert", ast.Pass: "pass", ast.Break: "break", ast.Continue: "continue",
    ast.AugAssign: "augmented assignment (write 'm = m + g')", ast.Expr: "bare expressions",
}


def _where(node) -> tuple[int | None, int | None]:
    line = getattr(node, "lineno", None)
    col = getattr(node, "col_offset", None)
    return line, (col + 1 if col is not None else None)


def _error(message: str, node) -> ProgramError:
    return ProgramError(message, *_where(node))


def _not_allowed(node) -> ProgramError:
    what = _NODE_NAMES.get(type(node), type(node).__name__)
    return _error(f"{what} not allowed in update-rule programs", node)


class _Converter:
    """Turns whitelisted ``ast`` nodes into program nodes, one method per node kind."""

    def __init__(self, text: str):
        self.text = text
        self._lines: list[bytes] | None = None

    def literal(self, node: ast.Constant) -> str:
        """The source text of a numeric literal (offsets are in UTF-8 bytes; a number is on one line)."""
        if self._lines is None:
            self._lines = self.text.encode("utf-8").splitlines()
        return self._lines[node.lineno - 1][node.col_offset:node.end_col_offset].decode("utf-8", "replace")

    def expr(self, node: ast.AST, depth: int = 0) -> Expr:
        if depth > MAX_DEPTH:
            raise _error(f"expression nested deeper than {MAX_DEPTH} levels", node)
        pos = _where(node)
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _error(f"constant {value!r} is not a number", node)
            try:
                number = float(value)
            except OverflowError:
                # bit_length, not str(): str() of a huge hex literal raises ValueError (int digit limit)
                raise _error(f"integer constant of {value.bit_length()} bits is too large for a float", node) from None
            if number == 0 and isinstance(value, float) and any(c in "123456789" for c in
                                                                  self.literal(node).lower().partition("e")[0]):
                raise _error(f"constant {self.literal(node)} is too small for a float (it would be 0): write 0, "
                             f"or a magnitude of at least 5e-324", node)
            return Const(number, pos)
        if isinstance(node, ast.Name):
            return Var(node.id, pos)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.UAdd):
                return self.expr(node.operand, depth + 1)
            if not isinstance(node.op, ast.USub):
                raise _error(f"operator {type(node.op).__name__} not allowed; use + - * /", node)
            operand = self.expr(node.operand, depth + 1)
            if isinstance(operand, Const):
                return Const(-operand.value, pos)
            return Call("neg", (operand,), pos)
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                hint = "; use power(x, y)" if isinstance(node.op, ast.Pow) else ""
                raise _error(f"operator {type(node.op).__name__} not allowed: only + - * /{hint}", node)
            return Call(op, (self.expr(node.left, depth + 1), self.expr(node.right, depth + 1)), pos)
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise _error("only library functions can be called, by name", node)
            if node.keywords:
                raise _error(f"{node.func.id}(): keyword arguments not allowed", node)
            return Call(node.func.id, tuple(self.expr(a, depth + 1) for a in node.args), pos)
        raise _not_allowed(node)

    def function(self, fn: ast.FunctionDef) -> Program:
        a = fn.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs or a.defaults or a.kw_defaults:
            raise _error("arguments must be plain names, without defaults, * or **", fn)
        if fn.decorator_list:
            raise _error("decorators not allowed", fn.decorator_list[0])
        body = list(fn.body[1:] if _is_docstring(fn.body[0]) else fn.body)
        if len(body) > MAX_STATEMENTS:
            raise _error(f"{len(body)} statements; the limit is {MAX_STATEMENTS}", fn)
        if not body or not isinstance(body[-1], ast.Return):
            raise _error("the function must end with 'return update, *new_state'", body[-1] if body else fn)
        statements = []
        for stmt in body[:-1]:
            if isinstance(stmt, ast.Return):
                raise _error("statements after return", body[body.index(stmt) + 1])
            statements.append(self.assign(stmt))
        returns = self.returns(body[-1])
        return Program(tuple(arg.arg for arg in a.args), tuple(statements), returns, fn.name, _where(fn))

    def assign(self, stmt: ast.stmt) -> Assign:
        if isinstance(stmt, ast.AnnAssign):
            if stmt.value is None or not isinstance(stmt.target, ast.Name):
                raise _error("an annotated statement must assign a value to a name", stmt)
            target, value = stmt.target, stmt.value
        elif isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
                raise _error("assign to one name at a time ('x = ...')", stmt)
            target, value = stmt.targets[0], stmt.value
        else:
            raise _not_allowed(stmt)
        return Assign(target.id, self.expr(value), _where(target))

    def returns(self, ret: ast.Return) -> tuple[Expr, ...]:
        if ret.value is None:
            raise _error("return needs values: 'return update, *new_state'", ret)
        values = ret.value.elts if isinstance(ret.value, ast.Tuple) else [ret.value]
        return tuple(self.expr(v) for v in values)


def parse(text: str, source: str | None = None) -> Program:
    """Parse and check one update-rule program; ``source`` names the file in errors.

    Raises:
        ProgramError: the text is not a program of the language; the message
            names the line, the column and the problem.
    """
    try:
        return _parse(text)
    except ProgramError as e:
        raise e.located(source) if source else e


def read_text(path: str | os.PathLike) -> str:
    """A user's text file (a program, a search configuration) as a str: UTF-8, a byte-order mark allowed,
    at most MAX_FILE_BYTES (read no further: ``/dev/zero`` is refused after 1 MiB).

    Raises:
        ValueError: the file is not UTF-8 or too large; the message names the file and the first bad byte.
        OSError: the file cannot be read.
    """
    with open(path, "rb") as f:
        return read_stream(f, str(path))


def read_stream(stream: BinaryIO, name: str) -> str:
    """:func:`read_text` of an open binary stream (``sys.stdin.buffer``); ``name`` names it in errors."""
    data = stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{name}: larger than {MAX_FILE_BYTES // 2**20} MiB; a program file holds at most "
                         f"{MAX_CHARS:,} characters and a configuration is a few KB: give the right file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{name}: not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}); save the file as "
                         f"UTF-8") from None


def _parse(text: str) -> Program:
    if not isinstance(text, str):
        raise ProgramError(f"program text must be a str, got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise ProgramError(f"program text has {len(text):,} characters; the limit is {MAX_CHARS:,}")
    if not text.strip():
        raise ProgramError("program text is empty; expected 'def train(w, g, ...): ... return update, ...'")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = ast.parse(text, mode="exec")
    except SyntaxError as e:
        col = e.offset if e.offset and e.offset > 0 else None
        raise ProgramError(f"syntax error: {e.msg}", e.lineno, col) from None
    except (RecursionError, MemoryError):
        raise ProgramError("program text nests too deeply for the parser") from None
    except ValueError as e:
        raise ProgramError(f"cannot parse the program text: {e}") from None
    defs = [n for n in module.body if not _is_docstring(n)]
    if not defs:
        raise ProgramError("no function definition found; expected 'def train(w, g, ...):'")
    for node in defs:
        if not isinstance(node, ast.FunctionDef):
            raise _not_allowed(node)
    if len(defs) > 1:
        raise _error("expected exactly one function definition", defs[1])
    try:
        program = _Converter(text).function(defs[0])
    except RecursionError:
        raise ProgramError("expression nested too deeply") from None
    check(program)
    return program


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
