"""Dead-code elimination: what cannot affect the weights, and removing it.

A statement is dead when its value reaches neither the update nor a *live*
state slot (a slot whose old value the update reads, directly or through other
live slots, at a later step). :func:`eliminate_dead_code` removes dead
statements; a dead slot's return becomes the slot's name. Temporaries named
``x<N>`` (as mutation names them) are renumbered ``x1, x2, ...`` in order.
"""

from __future__ import annotations

import re

from symopt.programs.program import Assign, Program, Var, names_in, rename, walk

TEMP = re.compile(r"^x\d+$")


def _needed_inputs(program: Program, seeds: set[str], body=None) -> tuple[set[str], list[bool]]:
    """Backward liveness: (names read before assignment, which statements are needed) for ``seeds``."""
    body = program.body if body is None else body
    needed = set(seeds)
    keep = [False] * len(body)
    for i in range(len(body) - 1, -1, -1):
        stmt = body[i]
        if stmt.target in needed:
            keep[i] = True
            needed.discard(stmt.target)
            needed |= names_in(stmt.value)
    return needed, keep


def live_states(program: Program) -> tuple[str, ...]:
    """State slots whose value can reach the update, at this step or a later one (in argument order)."""
    cached = program.__dict__.get("_live_states")  # programs are immutable: computed once per object
    if cached is None:
        cached = _live_states(program)
        object.__setattr__(program, "_live_states", cached)
    return cached


def _live_states(program: Program) -> tuple[str, ...]:
    states = program.state_args
    live: set[str] = set()
    while True:
        seeds = names_in(program.returns[0])
        for s, ret in zip(states, program.returns[1:]):
            if s in live:
                seeds |= names_in(ret)
        inputs, _ = _needed_inputs(program, seeds)
        new = live | (inputs & set(states))
        if new == live:
            return tuple(s for s in states if s in live)
        live = new


def inputs_read(program: Program) -> set[str]:
    """The arguments whose values can reach the update, at this step or through live state later."""
    live = set(live_states(program))
    seeds = names_in(program.returns[0])
    for s, ret in zip(program.state_args, program.returns[1:]):
        if s in live:
            seeds |= names_in(ret)
    needed, _ = _needed_inputs(program, seeds)
    return needed & set(program.args)


def eliminate_dead_code(program: Program, rename: bool = True) -> Program:
    """The program without statements that cannot affect the weights; see the module docstring."""
    states = program.state_args
    live = set(live_states(program))
    seeds = names_in(program.returns[0])
    for s, ret in zip(states, program.returns[1:]):
        if s in live:
            seeds |= names_in(ret)
    _, keep = _needed_inputs(program, seeds)
    body = tuple(s for s, k in zip(program.body, keep) if k)
    returns = (program.returns[0],) + tuple(ret if s in live else Var(s)
                                            for s, ret in zip(states, program.returns[1:]))
    out = Program(program.args, body, returns, program.name)
    return tidy_names(out) if rename else out


def dead_statements(program: Program) -> int:
    """How many of the program's statements :func:`eliminate_dead_code` removes."""
    return len(program.body) - len(eliminate_dead_code(program, rename=False).body)


def tidy_names(program: Program) -> Program:
    """Temporaries named ``x<N>`` renumbered ``x1, x2, ...`` in order of first assignment."""
    order: list[str] = []
    for stmt in program.body:
        if TEMP.match(stmt.target) and stmt.target not in order and stmt.target not in program.args:
            order.append(stmt.target)
    mapping = {old: f"x{i}" for i, old in enumerate(order, 1)}
    if all(k == v for k, v in mapping.items()):
        return program
    return Program(program.args, tuple(Assign(mapping.get(s.target, s.target), rename(s.value, mapping))
                                       for s in program.body),
                   tuple(rename(e, mapping) for e in program.returns), program.name)


def size(program: Program) -> int:
    """Number of expression nodes: how long a program is to read."""
    return sum(1 + sum(1 for _ in walk(s.value)) for s in program.body) + sum(
        sum(1 for _ in walk(e)) for e in program.returns)
