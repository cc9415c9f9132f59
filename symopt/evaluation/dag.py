"""The first pass of lowering (:mod:`symopt.evaluation.lowering`): expressions to a DAG of nodes.

Each node is an argument, a constant or one library call on earlier nodes, with the kind the library's
shape rules give it and whether it is *uniform* (depends only on constants, ``lr`` and ``t``). Common
sub-expressions are shared, every call on constants alone is folded in float64 (as the reference's
Python-float arithmetic does), and hero's reductions of scalars are written out as arithmetic.
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np

from symopt.evaluation import opcodes
from symopt.programs.functions import FUNCTIONS, Kind
from symopt.programs.program import Call, Const, Expr, Var


@dataclasses.dataclass
class Node:
    """One value of the DAG: an argument, a constant, or a call of a library function on earlier nodes."""

    fn: str | None  # None for arguments and constants
    args: tuple[int, ...] = ()
    value: float | None = None  # constants
    kind: Kind = Kind.SCALAR
    uniform: bool = False  # a scalar that depends only on constants, lr and t
    fixed: tuple[str, int] | None = None  # arguments: (operand kind, register)


class Builder:
    """Expressions to a DAG of nodes, with folding and common sub-expressions shared."""

    def __init__(self):
        self.nodes: list[Node] = []
        self.memo: dict[tuple, int] = {}

    def add(self, key: tuple, node: Node) -> int:
        if key not in self.memo:
            self.memo[key] = len(self.nodes)
            self.nodes.append(node)
        return self.memo[key]

    def const(self, value: float) -> int:
        bits = struct.pack("<d", value)  # NaN and -0.0 keep their identity
        return self.add(("const", bits), Node(None, value=value, uniform=True))

    def expr(self, e: Expr, env: dict[str, int]) -> int:
        if isinstance(e, Const):
            return self.const(e.value)
        if isinstance(e, Var):
            return env[e.name]
        assert isinstance(e, Call)
        return self.call(e.fn, tuple(self.expr(a, env) for a in e.args))

    def call(self, name: str, args: tuple[int, ...]) -> int:
        fn = FUNCTIONS[name]
        nodes = [self.nodes[a] for a in args]
        if all(n.fn is None and n.value is not None for n in nodes):
            folded = fold(name, [n.value for n in nodes])
            if folded is not None:
                return self.const(folded)
        kinds = tuple(n.kind for n in nodes)
        if fn.is_reduction and all(k == Kind.SCALAR for k in kinds):
            return self.scalar_reduction(name, args)
        kind = fn.shape(kinds)
        uniform = all(n.uniform for n in nodes)
        if name in opcodes.COMMUTATIVE and not uniform and nodes[0].uniform:
            args = args[::-1]  # (S, V) -> (V, S): exact for + * max min
        return self.add(("call", name, args), Node(name, args, kind=kind, uniform=uniform))

    def scalar_reduction(self, name: str, args: tuple[int, ...]) -> int:
        """Hero's reductions of scalars, written out with the operations the library's forms use."""
        def gn(x):
            return self.call("sqrt", (self.call("square", (x,)),))

        if name in ("global_norm", "norm"):
            return gn(args[0])
        if name == "dot":
            return self.call("*", args)
        if name == "cosine_sim":
            x, y = args
            return self.call("/", (self.call("*", (x, y)), self.call("*", (gn(x), gn(y)))))
        if name == "clip_by_global_norm":
            x, c = args
            factor = self.call("min", (self.const(1.0), self.call("/", (c, gn(x)))))
            return self.call("*", (x, factor))
        if name in ("row_mean", "col_mean"):
            return args[0]  # a scalar is the same along every row and column
        raise AssertionError(name)


def fold(fn: str, values: list[float]) -> float | None:
    """A call on constants, evaluated now in float64 (None if it cannot be)."""
    f = FUNCTIONS[fn]
    if f.is_reduction:
        return None  # written out by scalar_reduction, then folded piece by piece
    try:
        with np.errstate(all="ignore"):
            # 0-ary functions give the Python float the reference uses (get_eps() is exactly 1e-8)
            out = f.elementwise(np) if f.arity == 0 else f.elementwise(np, *(np.float64(v) for v in values))
        return float(np.asarray(out, np.float64))
    except Exception:  # noqa: BLE001 - anything odd is left to run time
        return None
