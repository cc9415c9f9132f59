"""The start program of a search: a baseline or program text, conformed to the search space's arguments."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from symopt.programs import baselines
from symopt.programs.checker import check
from symopt.programs.parser import parse
from symopt.programs.program import Assign, Call, Program, Var, names_in
from symopt.programs.program import rename as rename_vars

if TYPE_CHECKING:
    from symopt.config.space import SearchSpace


HERO_ADAMW = """def train(w, g, m, v, lr):
    g2 = square(g)
    m = interpolate(m, g, 0.1)
    v = interpolate(v, g2, 0.001)
    update = m / (sqrt(v) + 1e-8)
    update = update + w * 0.0001
    update = update * lr
    return update, m, v
"""
"""AdamW as hero writes it (no bias correction), the Lion search's start program."""


def start_program(start: str, space: SearchSpace) -> Program:
    """The start program from a baseline name or program text, conformed to the space's arguments."""
    if "def " in start:
        program = parse(start, "campaign.start")
    else:
        try:
            program = baselines.get(start)
        except (KeyError, ValueError) as e:
            raise ValueError(f"start program {start!r}: {e}") from None
        if not isinstance(program, Program):
            raise ValueError(f"start program {start!r} is an optax-level baseline with no program text")
    return conform(program, space)


def conform(program: Program, space: SearchSpace) -> Program:
    """The same update rule with the space's argument list.

    State slots are matched by name, then in order; a slot the program lacks is
    passed through unchanged (it stays zero). A program without ``lr`` in a
    space with ``lr`` gets its update multiplied by ``lr`` (the same update).
    Returned expressions become statements, so the return line is only names.
    """
    args = space.arguments
    if program.args == args:
        check(program)
        return program
    proto = Program(args, (), ())
    role_arg = {proto.role(a): a for a in args if proto.role(a) != "state"}
    rename: dict[str, str] = {}
    for a in program.args:
        role = program.role(a)
        if role == "state":
            continue
        if role not in role_arg and role != "lr":
            raise ValueError(f"the program reads {a!r} (role {role}), which the space's arguments "
                             f"{', '.join(args)} do not provide")
        if role in role_arg:
            rename[a] = role_arg[role]
    own, slots = list(program.state_args), list(space.state_args)
    unmatched = [s for s in own if s not in slots]
    free = [s for s in slots if s not in own]
    if len(unmatched) > len(free):
        raise ValueError(f"the program has {len(own)} state slots ({', '.join(own)}); the space has "
                         f"{len(slots)} ({', '.join(slots)})")
    rename.update({s: s for s in own if s in slots})
    rename.update(dict(zip(unmatched, free)))
    taken = set(args)
    body = []
    for stmt in program.body:
        target = rename.get(stmt.target, stmt.target)
        if stmt.target not in rename and target in taken:
            target = _fresh(stmt.target, taken)
            rename[stmt.target] = target
        elif stmt.target not in rename:
            rename[stmt.target] = target
        taken.add(target)
        body.append(Assign(target, rename_vars(stmt.value, rename)))
    returns = [rename_vars(e, rename) for e in program.returns]
    update = returns[0]
    if not program.has_lr and "lr" in role_arg:
        update = Call("*", (update, Var(role_arg["lr"])))
    new_state = dict(zip((rename[s] for s in own), returns[1:]))
    out = Program(args, tuple(body), (update, *(new_state.get(s, Var(s)) for s in slots)), program.name)
    out = _named_returns(out, taken)
    check(out)
    return out


def _named_returns(program: Program, taken: set[str]) -> Program:
    """Returned expressions moved into statements (``update = g * lr``; ``return update, m, v``), as hero
    writes programs: mutation changes statements, never the return line."""
    body = list(program.body)
    returns = list(program.returns)
    wanted = ["update", *program.state_args]
    for i, expr in enumerate(program.returns):
        if isinstance(expr, Var):
            continue
        others = set().union(*(names_in(e) for j, e in enumerate(program.returns) if j != i))
        target = wanted[i]
        if target in others or (i == 0 and target in program.args):
            target = _fresh(target, taken | others)
        taken.add(target)
        body.append(Assign(target, expr))
        returns[i] = Var(target)
    return dataclasses.replace(program, body=tuple(body), returns=tuple(returns))


def _fresh(name: str, taken: set[str]) -> str:
    i = 1
    while f"{name}_{i}" in taken:
        i += 1
    return f"{name}_{i}"
