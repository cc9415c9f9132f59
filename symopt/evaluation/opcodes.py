"""The interpreter's instruction set: one opcode per library function and operand layout.

The interpreter keeps values in two places. *Vector rows* hold one float32 per
parameter: tensors, per-tensor values (``norm(g)``, stored broadcast over each
tensor) and scalars computed from tensors (``global_norm(g)``, stored
broadcast over the whole row). *Scalar slots* hold the uniform scalars, those
that depend only on constants, ``lr`` and ``t``: they are the same for every
parameter and known before a step runs, so the lowering computes them on the
host for all steps at once (see :mod:`symopt.evaluation.lowering`).

An opcode is a function and an operand layout: for each operand, a vector row
(``V``) or a scalar slot (``S``); ``g * 0.1`` is ``*(V,S)``, its constant
broadcast inside the fused kernel. Every opcode writes one vector row.
Commutative operators have no ``(S,V)`` form (the lowering swaps the operands),
and a reduction appears only on tensors: on a scalar, hero's reductions are
plain arithmetic (``global_norm(x) = sqrt(square(x))``), which the lowering
writes out. Two more opcodes move values: ``bcast(S)`` (a scalar slot as a
row, for a program that returns a scalar) and ``mov(V)`` (a row copy), and
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
import itertools

import jax.numpy as jnp

from symopt.programs.functions import FUNCTIONS

V, S = True, False  # operand read from a vector row / from a scalar slot
MAX_ARITY = 6
COMMUTATIVE = frozenset({"+", "*", "max", "min"})
# Reductions over tensors, with the operand layouts they take (a clip norm may be a row).
REDUCTIONS = {
    "norm": [(V,)], "global_norm": [(V,)], "dot": [(V, V)], "cosine_sim": [(V, V)],
    "clip_by_global_norm": [(V, S), (V, V)],
}


@dataclasses.dataclass(frozen=True)
class Opcode:
    """One instruction kind: a library function (or ``bcast``/``mov``) on a fixed operand layout."""

    fn: str
    operands: tuple[bool, ...]  # V or S per operand

    @property
    def name(self) -> str:
        return f"{self.fn}({','.join('V' if v else 'S' for v in self.operands)})"


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
            if not any(layout):
                continue  # all-scalar calls are uniform: computed on the host
            if fn.name in COMMUTATIVE and layout == (S, V):
                continue
            ops.append(Opcode(fn.name, layout))
    return tuple(ops)


OPCODES: tuple[Opcode, ...] = _opcodes()
INDEX: dict[tuple[str, tuple[bool, ...]], int] = {(op.fn, op.operands): i for i, op in enumerate(OPCODES)}
BCAST = INDEX["bcast", (S,)]
MOV = INDEX["mov", (V,)]


def opcode(fn: str, operands: tuple[bool, ...]) -> int:
    """The opcode number of ``fn`` on an operand layout (KeyError if there is none)."""
    return INDEX[fn, tuple(operands)]
