"""Mutation as in hero: insert, delete or modify one statement; pure functions of a NumPy Generator.

* insert: a random function of the space applied to random in-scope names or
  new constants, assigned to a new name or an existing one, at a random place;
* delete: a random statement goes;
* modify: in a random statement, one random node changes: a call gets another
  function (same arity where the space has one), a name becomes another
  in-scope name (or a new constant), a constant is multiplied by 2^N(0, 1);
* constant: one of the program's constants, chosen at random, is multiplied by
  2^N(0, 1) and nothing else changes. Alone (the other weights 0) it is the Lion
  paper's control: the same budget spent tuning the start program's constants;
* accumulate (not in hero): a read of a name ``x`` is chosen at random, a
  running average ``s = interpolate(s, x, c)`` of ``x`` into a state slot
  ``s`` (a free one, not live, where there is one) is inserted at a random
  place before it, and that read becomes a read of ``s``. Momentum is two hero steps (an insertion that is dead code
  until a modification reads it) and almost never arises from SGD in a
  3,000-training search; this writes it, or a running average of any other
  value, in one. ``c`` is log-uniform in [0.01, 1]: memories of 1 to 100 steps.
* wrap (not in hero): a read of a name ``x`` is chosen at random and becomes
  ``f(x)``, ``f`` a one-argument function of the space. From AdamW,
  ``orthogonalize(m)`` (Muon's direction) is one wrap away; with hero's
  operators it takes an insertion that stays dead code until a modification reads it.
* graft (not in hero): the update ``u`` that the program returns takes, on
  matrix leaves only, the direction of ``f(u)`` at the norm of ``u``:
  ``d = f(u)``, ``u + is_matrix(u) * (d * (norm(u) / norm(d)) - u)``, ``f`` a
  one-argument function of the space. Learning-rate grafting (Agarwal et al.
  2020: the direction of one rule, the per-layer step size of another) keeps
  the rule's learning rate right, so ``f = orthogonalize`` gives Muon's
  direction at AdamW's step size in one move: a wrap of the update at AdamW's
  rate steps ``sqrt(max(rows, cols))`` times too little, and its vectors
  (biases, gains) would lose AdamW's direction, which Muon keeps for them.

:func:`mutate` applies operators until the result is a valid program that
behaves differently from the parent (its fingerprint differs), as hero's
``mutate_function_until`` does: an invalid step is undone, a step that leaves
the behaviour unchanged (dead code, say) is kept and mutated further. Invalid
means: the abstract execution of :func:`symopt.programs.check` fails (shape or
type error), the program is longer than the space allows, or its update
cannot change the weights (it reads neither ``g`` nor ``w``, or the probes of
:func:`symopt.evolve.dedup.behaviour` show it constant, zero or NaN whatever
``g`` and ``w`` are).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from symopt.programs.checker import check
from symopt.programs.errors import ProgramError
from symopt.programs.functions import FUNCTIONS, Kind
from symopt.programs.liveness import inputs_read, live_states
from symopt.programs.program import Assign, Call, Const, Expr, Program, Var
from symopt.evolve.dedup import Behaviour, behaviour, canonical_hash
from symopt.config.space import GRAFT_FUNCTIONS, SearchSpace

CONST_DIGITS = 4
"""New and mutated constants keep this many significant digits, so programs stay readable."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A program with what the caches need: its canonical hash and its behaviour."""

    program: Program
    canonical: str
    behaviour: Behaviour

    @classmethod
    def of(cls, program: Program) -> "Candidate":
        return cls(program, canonical_hash(program), behaviour(program))


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What :func:`mutate` produced: a child (or None after ``max_tries`` steps) and the counts."""

    child: Candidate | None
    generated: int
    invalid: int
    unchanged: int
    operators: tuple[str, ...]


def _round(value: float) -> float:
    return float(f"{value:.{CONST_DIGITS}g}")


def new_constant(space: SearchSpace, rng: np.random.Generator) -> Const:
    """A constant drawn as the space says; negative ones are Const(-c), never neg(Const(c))."""
    c = space.constants
    if c.init == "normal":
        value = rng.normal(0.0, c.scale)
    else:
        value = 10.0 ** rng.uniform(math.log10(c.low), math.log10(c.high))
        if rng.random() < c.negative:
            value = -value
    return Const(_round(float(np.clip(value, -c.max_abs, c.max_abs))))


def mutate_constant(const: Const, space: SearchSpace, rng: np.random.Generator) -> Const:
    """``c * 2^(mutation_scale * N(0, 1))``, clipped to the space's range; a zero gets a new constant."""
    c = space.constants
    if const.value == 0:
        return new_constant(space, rng)
    value = const.value * 2.0 ** (c.mutation_scale * rng.standard_normal())
    return Const(_round(float(np.clip(value, -c.max_abs, c.max_abs))))


def names_in_scope(program: Program, index: int) -> list[str]:
    """Argument and variable names readable before statement ``index``, in order of first appearance."""
    seen = dict.fromkeys(program.args)
    for stmt in program.body[:index]:
        seen.setdefault(stmt.target)
    return list(seen)


def fresh_name(program: Program) -> str:
    """The first of ``x1, x2, ...`` not used in the program."""
    used = set(program.args) | {s.target for s in program.body}
    k = 1
    while f"x{k}" in used:
        k += 1
    return f"x{k}"


def _operand(scope: list[str], space: SearchSpace, rng: np.random.Generator) -> Expr:
    if rng.random() < space.constants.probability:
        return new_constant(space, rng)
    return Var(scope[rng.integers(len(scope))])


def insert(program: Program, space: SearchSpace, rng: np.random.Generator) -> Program:
    """A random statement ``name = f(args)`` at a random place."""
    index = int(rng.integers(len(program.body) + 1))
    scope = names_in_scope(program, index)
    fn = space.functions[rng.integers(len(space.functions))]
    args = tuple(_operand(scope, space, rng) for _ in range(FUNCTIONS[fn].arity))
    target = fresh_name(program) if rng.random() < 0.5 else scope[rng.integers(len(scope))]
    body = program.body[:index] + (Assign(target, Call(fn, args)),) + program.body[index:]
    return dataclasses.replace(program, body=body)


def delete(program: Program, space: SearchSpace, rng: np.random.Generator) -> Program | None:
    """The program without one random statement (None when it has none)."""
    if not program.body:
        return None
    index = int(rng.integers(len(program.body)))
    return dataclasses.replace(program, body=program.body[:index] + program.body[index + 1:])


def _sites(expr: Expr, path: tuple[int, ...] = ()):
    yield path, expr
    if isinstance(expr, Call):
        for i, a in enumerate(expr.args):
            yield from _sites(a, path + (i,))


def _replace(expr: Expr, path: tuple[int, ...], new: Expr) -> Expr:
    if not path:
        return new
    args = list(expr.args)
    args[path[0]] = _replace(args[path[0]], path[1:], new)
    return Call(expr.fn, tuple(args))


def modify(program: Program, space: SearchSpace, rng: np.random.Generator) -> Program | None:
    """One random node of one random statement changed: its function, a name, or a constant."""
    if not program.body:
        return None
    index = int(rng.integers(len(program.body)))
    stmt = program.body[index]
    sites = list(_sites(stmt.value))
    path, node = sites[rng.integers(len(sites))]
    scope = names_in_scope(program, index)
    if isinstance(node, Const):
        new = mutate_constant(node, space, rng)
    elif isinstance(node, Var):
        others = [n for n in scope if n != node.name]
        if not others or rng.random() < space.constants.probability:
            new = new_constant(space, rng)
        else:
            new = Var(others[rng.integers(len(others))])
    else:
        arity = len(node.args)
        same = [f for f in space.functions if FUNCTIONS[f].arity == arity and f != node.fn]
        pool = same or [f for f in space.functions if f != node.fn and FUNCTIONS[f].arity > 0]
        if not pool:
            return None
        fn = pool[rng.integers(len(pool))]
        want = FUNCTIONS[fn].arity
        args = node.args[:want] + tuple(_operand(scope, space, rng) for _ in range(want - len(node.args[:want])))
        new = Call(fn, args)
    body = list(program.body)
    body[index] = Assign(stmt.target, _replace(stmt.value, path, new))
    return dataclasses.replace(program, body=tuple(body))


def constant(program: Program, space: SearchSpace, rng: np.random.Generator) -> Program | None:
    """One random constant of the program mutated (None when it has none)."""
    sites = [(i, path, node) for i, stmt in enumerate(program.body) for path, node in _sites(stmt.value)
             if isinstance(node, Const)]
    if not sites:
        return None
    index, path, node = sites[rng.integers(len(sites))]
    body = list(program.body)
    body[index] = Assign(body[index].target, _replace(body[index].value, path, mutate_constant(node, space, rng)))
    return dataclasses.replace(program, body=tuple(body))


ACCUMULATE_RATES = (0.01, 1.0)
"""Range of ``c`` in ``s = interpolate(s, x, c)`` (log-uniform): a memory of 1/c steps."""


def _reads(program: Program) -> list[tuple[int, tuple[int, ...], str]]:
    """Every read of a name as (statement index, path in its value, name); index len(body) is the update returned."""
    exprs = [stmt.value for stmt in program.body] + [program.returns[0]]
    return [(i, path, node.name) for i, expr in enumerate(exprs) for path, node in _sites(expr)
            if isinstance(node, Var)]


def accumulate(program: Program, space: SearchSpace, rng: np.random.Generator) -> Program | None:
    """A running average of a read name into a state slot, read in its place (None without reads or slots)."""
    reads, slots = _reads(program), program.state_args
    if not reads or not slots:
        return None
    index, path, name = reads[rng.integers(len(reads))]
    live = live_states(program)
    free = [s for s in slots if s not in live] or slots  # keep the memories in use
    slot = free[rng.integers(len(free))]
    # the average can go anywhere after the name is written (or anywhere, for an argument) and before the read
    written = [i for i, stmt in enumerate(program.body[:index]) if stmt.target == name]
    at = int(rng.integers(written[-1] + 1 if written else 0, index + 1))
    rate = _round(10.0 ** rng.uniform(*np.log10(ACCUMULATE_RATES)))
    average = Assign(slot, Call("interpolate", (Var(slot), Var(name), Const(rate))))
    body = list(program.body)
    returns = program.returns
    if index < len(body):
        body[index] = Assign(body[index].target, _replace(body[index].value, path, Var(slot)))
    else:
        returns = (_replace(returns[0], path, Var(slot)),) + returns[1:]
    body.insert(at, average)
    return dataclasses.replace(program, body=tuple(body), returns=returns)


def wrap(program: Program, space: SearchSpace, rng: np.random.Generator) -> Program | None:
    """A read of a name wrapped in a one-argument function of the space (None without reads or such functions)."""
    reads = _reads(program)
    unary = [f for f in space.functions if FUNCTIONS[f].arity == 1]
    if not reads or not unary:
        return None
    index, path, name = reads[rng.integers(len(reads))]
    wrapped = Call(unary[rng.integers(len(unary))], (Var(name),))
    if index == len(program.body):
        returns = (_replace(program.returns[0], path, wrapped),) + program.returns[1:]
        return dataclasses.replace(program, returns=returns)
    body = list(program.body)
    body[index] = Assign(body[index].target, _replace(body[index].value, path, wrapped))
    return dataclasses.replace(program, body=tuple(body))


def _graftable(space: SearchSpace) -> list[str]:
    """One-argument functions of the space whose value on a tensor is a tensor (a direction to graft)."""
    return [f for f in space.functions if FUNCTIONS[f].arity == 1 and FUNCTIONS[f].shape((Kind.TENSOR,)) == Kind.TENSOR]


def graft(program: Program, space: SearchSpace, rng: np.random.Generator) -> Program | None:
    """On matrix leaves, the returned update takes the direction of f(update) at its own norm (None if no f)."""
    functions = _graftable(space)
    if not functions or not set(GRAFT_FUNCTIONS) <= set(space.functions):
        return None
    body = list(program.body)
    u = program.returns[0]
    if not isinstance(u, Var):  # name it, so that the graft reads it and does not repeat it
        body.append(Assign(fresh_name(program), u))
        u = Var(body[-1].target)
    direction = fresh_name(dataclasses.replace(program, body=tuple(body)))
    body.append(Assign(direction, Call(functions[rng.integers(len(functions))], (u,))))
    # a fresh name for the result: u may also be a state slot that the program returns
    result = fresh_name(dataclasses.replace(program, body=tuple(body)))
    d = Var(direction)
    step = Call("*", (d, Call("/", (Call("norm", (u,)), Call("norm", (d,))))))
    body.append(Assign(result, Call("+", (u, Call("*", (Call("is_matrix", (u,)), Call("-", (step, u))))))))
    return dataclasses.replace(program, body=tuple(body), returns=(Var(result),) + program.returns[1:])


OPERATORS = {"insert": insert, "delete": delete, "modify": modify, "constant": constant, "accumulate": accumulate,
             "wrap": wrap, "graft": graft}


def mutate_once(program: Program, space: SearchSpace, rng: np.random.Generator) -> tuple[str, Program | None]:
    """One operator, chosen by the space's weights (no insertion at the maximum length)."""
    # OPERATORS lists hero's lacking operators last: with their weights 0 the draw is hero's
    growing = ("insert", "accumulate", "graft")  # they add statements: none at the maximum length
    room = len(program.body) < space.max_length
    names = tuple(OPERATORS)
    weights = np.array([getattr(space.mutation, n) if (room if n in growing else program.body) else 0.0
                        for n in names])
    if weights.sum() <= 0:
        weights = np.array([1.0 if n == "insert" else 0.0 for n in names])
    name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    return name, OPERATORS[name](program, space, rng)


def why_invalid(program: Program, space: SearchSpace) -> str | None:
    """Why the program may not be trained (None if it may): checks that need no probe runs."""
    if len(program.body) > space.max_length:
        return f"{len(program.body)} statements; the space allows {space.max_length}"
    try:
        check(program)
    except ProgramError as e:
        return str(e)
    weight, grad = program.arg_for("weight"), program.arg_for("grad")
    if not inputs_read(program) & {weight, grad}:
        return "the update reads neither the gradient nor the weights"
    return None


def mutate(parent: Program | Candidate, space: SearchSpace, rng: np.random.Generator) -> Outcome:
    """A child that is valid and behaves differently from ``parent``; see the module docstring."""
    parent = parent if isinstance(parent, Candidate) else Candidate.of(parent)
    current = parent.program
    invalid = unchanged = 0
    ops: list[str] = []
    for attempt in range(1, space.mutation.max_tries + 1):
        op, program = mutate_once(current, space, rng)
        if program is None or why_invalid(program, space) is not None:
            invalid += 1
            continue
        canonical = canonical_hash(program)
        if canonical == parent.canonical:
            unchanged += 1
            current = program
            ops.append(op)
            continue
        b = behaviour(program)
        if not b.changes_weights:
            invalid += 1
            continue
        ops.append(op)
        if b.fingerprint == parent.behaviour.fingerprint:
            unchanged += 1
            current = program
            continue
        return Outcome(Candidate(program, canonical, b), attempt, invalid, unchanged, tuple(ops))
    return Outcome(None, space.mutation.max_tries, invalid, unchanged, tuple(ops))
