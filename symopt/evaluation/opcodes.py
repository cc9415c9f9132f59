"""The interpreter's instruction set: one opcode per library function and operand layout.

The interpreter keeps values in two places. *Vector rows* hold one float32 per
parameter: tensors, per-tensor values (``norm(g)``, stored broadcast over each
tensor) and scalars computed from tensors (``global_norm(g)``, stored
broadcast over the whole row). *Scalar slots* hold the uniform scalars, those
that depend only on constants, ``lr`` and ``t``: they are the same for every
parameter and known before a step runs, so the lowering computes them on the
host for all steps at once (see :mod:`symopt.evaluation.lowering`).

The gradient and the weights are not rows: the interpreter holds them apart,
and an instruction reads the gradient in place (operand ``G``). An opcode is a
function and an operand layout: for each operand, a vector row (``V``), a
scalar slot (``S``) or the gradient (``G``, for the functions moment updates
read it with, :data:`GRADIENT_FORMS`); ``m * 0.9`` is ``*(V,S)``, its constant
broadcast inside the fused kernel, and ``g * 0.1`` is ``*(G,S)``. Every opcode
writes one vector row. A program that reads the gradient otherwise, or the
weights at all, first loads them into their rows: ``mov(G)``, ``mov(W)``.
Commutative operators have no ``(S,V)`` form (the lowering swaps the operands),
and a reduction appears only on tensors: on a scalar, hero's reductions are
plain arithmetic (``global_norm(x) = sqrt(square(x))``), which the lowering
writes out. Opcodes that move values: ``bcast(S)`` (a scalar slot as a
row, for a program that returns a scalar), ``mov(V)`` (a row copy) and the
loads; and
eight are superinstructions for the idioms moment updates are made of:
``axpby = x*s + y*t``, ``axpy = x*s + y``, ``ypax = y + x*s``,
``sqaxpby = square(x)*s + y*t``, ``sqrtadd = sqrt(x + s)``, Lion's direction
``signaxpby = sign(x*s + y*t)``, Adam's direction
``rsqrtdiv = divide(x, sqrt(y + u) + v)`` and, with both moments bias-corrected,
``adamdir = divide(divide(x, s), sqrt(divide(y, t) + u) + v)``.

The library functions' JAX forms are applied by
:mod:`symopt.evaluation.interpreter`; the superinstructions' are here.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Iterable

import jax.numpy as jnp
import numpy as np

from symopt.programs.functions import FUNCTIONS

S, V, G, W = "S", "V", "G", "W"  # an operand read from a scalar slot, a vector row, the gradient, the weights
MAX_ARITY = 6
COMMUTATIVE = frozenset({"+", "*", "max", "min"})
# Reductions over tensors, with the operand layouts they take (a clip norm may be a row).
REDUCTIONS = {
    "norm": [(V,)], "global_norm": [(V,)], "dot": [(V, V)], "cosine_sim": [(V, V)],
    "clip_by_global_norm": [(V, S), (V, V)],
    # the matrix functions: static loops over the task's tensors (their shapes are the layout's)
    "orthogonalize": [(V,)], "row_mean": [(V,)], "col_mean": [(V,)], "rows": [(V,)], "cols": [(V,)],
    "is_matrix": [(V,)],
}


@dataclasses.dataclass(frozen=True)
class Opcode:
    """One instruction kind: a library function (or ``bcast``/``mov``) on a fixed operand layout."""

    fn: str
    operands: tuple[str, ...]  # S, V, G or W per operand

    @property
    def name(self) -> str:
        return f"{self.fn}({','.join(self.operands)})"


FUSED = {  # superinstructions the lowering forms from single-use products (see lowering._fuse)
    "axpby": ((V, S, V, S), lambda x, s, y, t: x * s + y * t),
    "axpy": ((V, S, V), lambda x, s, y: x * s + y),
    "ypax": ((V, V, S), lambda y, x, s: y + x * s),
    "sqaxpby": ((V, S, V, S), lambda x, s, y, t: jnp.square(x) * s + y * t),
    "sqrtadd": ((V, S), lambda x, s: jnp.sqrt(jnp.abs(x + s))),  # the library's sqrt takes |x|
    "signaxpby": ((V, S, V, S), lambda x, s, y, t: jnp.sign(x * s + y * t)),
    "rsqrtdiv": ((V, V, S, S), lambda x, y, u, v: jnp.divide(x, jnp.sqrt(jnp.abs(y + u)) + v)),
    "adamdir": ((V, S, V, S, S, S),
                lambda x, s, y, t, u, v: jnp.divide(jnp.divide(x, s), jnp.sqrt(jnp.abs(jnp.divide(y, t) + u)) + v)),
}


GRADIENT_FORMS = tuple(Opcode(fn, layout) for fn, layout in [
    ("mov", (G,)), ("mov", (W,)),  # the loads
    ("axpby", (G, S, V, S)), ("sqaxpby", (G, S, V, S)), ("signaxpby", (G, S, V, S)), ("ypax", (G, V, S)),
    ("interpolate", (V, G, S)), ("square", (G,)), ("sign", (G,)), ("*", (V, G)), ("*", (G, S)), ("divide", (G, S)),
])
"""The opcodes that read the gradient in place (``G``), and the loads of the gradient and the
weights into their rows. Each opcode costs about 30 ms of compiling per executable, so these are
the forms that the baseline programs read ``g`` with and that at least one in 200 candidates of
``quick.toml`` campaigns do (3,182 programs of three campaigns: 93% read g only through them);
any other reader loads it into its row first."""


def _opcodes() -> tuple[Opcode, ...]:
    ops = [Opcode("bcast", (S,)), Opcode("mov", (V,))]
    ops += [Opcode(name, layout) for name, (layout, _) in FUSED.items()]
    for fn in FUNCTIONS.values():
        if fn.arity == 0:
            continue
        if fn.is_reduction:
            ops += [Opcode(fn.name, layout) for layout in REDUCTIONS[fn.name]]
            continue
        for layout in itertools.product((V, S), repeat=fn.arity):
            if V not in layout:
                continue  # all-scalar calls are uniform: computed on the host
            if fn.name in COMMUTATIVE and layout == (S, V):
                continue
            ops.append(Opcode(fn.name, layout))
    return tuple(ops) + GRADIENT_FORMS


OPCODES: tuple[Opcode, ...] = _opcodes()
INDEX: dict[tuple[str, tuple[str, ...]], int] = {(op.fn, op.operands): i for i, op in enumerate(OPCODES)}
BCAST = INDEX["bcast", (S,)]
MOV = INDEX["mov", (V,)]
LOAD_G = INDEX["mov", (G,)]
LOAD_W = INDEX["mov", (W,)]


def opcode(fn: str, operands: tuple[str, ...]) -> int:
    """The opcode number of ``fn`` on an operand layout (KeyError if there is none)."""
    return INDEX[fn, tuple(operands)]


WRITTEN_OUT = {
    "norm": ("sqrt", "square"), "global_norm": ("sqrt", "square"), "dot": ("*",),
    "cosine_sim": ("/", "*", "sqrt", "square"), "clip_by_global_norm": ("min", "/", "*", "sqrt", "square"),
}
"""The functions a reduction of a scalar is written out with (``dag.Builder.scalar_reduction``)."""
FUSED_FROM = {
    "axpby": ("+", "*"), "axpy": ("+", "*"), "ypax": ("+", "*"), "sqaxpby": ("+", "*", "square"),
    "sqrtadd": ("sqrt", "+"), "signaxpby": ("sign", "+", "*"), "rsqrtdiv": ("divide", "sqrt", "+"),
    "adamdir": ("divide", "sqrt", "+"),
}
"""The functions each superinstruction is formed from (``lowering._fuse``): it can appear only where all are called."""


@dataclasses.dataclass(frozen=True)
class InstructionSet:
    """The opcodes one compiled interpreter holds, as indices into :data:`OPCODES` (ascending).

    An executable's ``lax.switch`` has one branch per opcode of its set, about 35 ms of compiling each,
    so a campaign compiles the opcodes its space can produce and no others
    (:func:`instruction_set`). A program's code names opcodes by their index in :data:`OPCODES`;
    :meth:`local` renumbers it to the executable's branches.
    """

    opcodes: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.opcodes)

    @functools.cached_property
    def _branch(self) -> np.ndarray:
        out = np.full(len(OPCODES), -1, np.int32)
        out[list(self.opcodes)] = np.arange(len(self.opcodes), dtype=np.int32)
        return out

    def local(self, code: np.ndarray, name: str = "a program") -> np.ndarray:
        """Opcode numbers ``code`` as branch numbers of this set's executables; ValueError naming the first
        opcode outside the set (never a silent recompile)."""
        out = self._branch[code]
        if (out < 0).any():
            missing = OPCODES[int(np.asarray(code)[out < 0].flat[0])]
            raise ValueError(f"{name} lowers to {missing.name}, outside this evaluation's instruction set: "
                             f"pass functions= that include {missing.fn!r} (or None for every function)")
        return out


@functools.lru_cache(maxsize=None)
def _instruction_set(functions: frozenset[str] | None) -> InstructionSet:
    if functions is None:
        return InstructionSet(tuple(range(len(OPCODES))))
    unknown = functions - set(FUNCTIONS)
    if unknown:
        raise ValueError(f"unknown functions {sorted(unknown)}: use names of symopt.programs.functions.FUNCTIONS")
    called = set(functions)
    for fn in functions:
        called.update(WRITTEN_OUT.get(fn, ()))
    called |= {f for f, parts in FUSED_FROM.items() if called.issuperset(parts)}
    called |= {"bcast", "mov"}
    return InstructionSet(tuple(i for i, op in enumerate(OPCODES) if op.fn in called))


def instruction_set(functions: Iterable[str] | None = None) -> InstructionSet:
    """The opcodes that programs calling only ``functions`` lower to (None: every opcode).

    Each function with every operand layout, the scalar forms of its reductions
    (:data:`WRITTEN_OUT`), the superinstructions formed from what is called
    (:data:`FUSED_FROM`), and the moves and loads.
    """
    return _instruction_set(None if functions is None else frozenset(functions))
