"""A program as an ordinary optax optimizer."""

from __future__ import annotations

import collections
import functools
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from symopt.export.layout import defaults as hyperparameter_defaults, factor, stored_shape
from symopt.programs.checker import check, state_kinds
from symopt.programs.execute import bind, check_overrides, run
from symopt.programs.spaces import TreeSpace
from symopt.programs.program import Program

__all__ = ["factor", "optimizer_factory", "state_type", "stored_shape", "to_optax"]

ScalarOrSchedule = float | jax.Array | Callable[[jax.Array], jax.Array]


def state_type(program: Program) -> type:
    """The optimizer state: a NamedTuple of the step ``count`` and one tree per state slot."""
    return _state_class(f"{program.name.title().replace('_', '')}State", ("count", *program.state_args))


@functools.cache
def _state_class(name: str, fields: tuple[str, ...]) -> type:
    # One class per (name, fields): a pytree's type is part of its structure, so a new class per
    # to_optax() call (optax.inject_hyperparams calls it at every step) would make jax.jit retrace.
    return collections.namedtuple(name, fields, rename=True)


def to_optax(program: Program, learning_rate: ScalarOrSchedule = 1e-3,
             **constant_overrides: Any) -> optax.GradientTransformationExtraArgs:
    """The program as an optax optimizer: ``params + updates`` is ``w - program's update``.

    Args:
        program: the update rule (or an optax-level baseline, which builds itself).
        learning_rate: a float or an optax schedule of the step count; passed as
            ``lr`` to a program that takes it, else multiplied into the update.
        **constant_overrides: new values for hyperparameters, the names the
            program assigns a constant (``b1 = 0.9``); floats or arrays, so the
            optimizer works under ``optax.inject_hyperparams``.

    The update and the new state keep the dtype of the gradient and of the
    parameters (bf16 in, bf16 out), whatever dtype the arithmetic promotes to.
    """
    if not isinstance(program, Program):
        if hasattr(program, "to_optax"):
            return program.to_optax(learning_rate=learning_rate, **constant_overrides)
        raise TypeError(f"to_optax() needs a symopt.Program, got {type(program).__name__}; "
                        f"use symopt.parse(text) to make one")
    if isinstance(constant_overrides.get("constant_overrides"), dict):
        # optax.inject_hyperparams(to_optax) re-calls us with the bound **kwargs as one dict; its
        # entries stay static there (optimizer_factory makes them injectable).
        constant_overrides = {**constant_overrides.pop("constant_overrides"), **constant_overrides}
    check(program)
    check_overrides(program, constant_overrides)
    State = state_type(program)
    slots = program.state_args
    weight, lr_arg, step = (program.arg_for(r) for r in ("weight", "lr", "step"))

    held = state_kinds(program)

    def init(params):
        return State(jnp.zeros([], jnp.int32), *(jax.tree_util.tree_map(
            lambda p, k=held[s]: jnp.zeros(stored_shape(p.shape, k), p.dtype), params) for s in slots))

    def update(updates, state, params=None, **extra_args):
        del extra_args
        leaves, treedef = jax.tree_util.tree_flatten(updates)
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        if weight and params is None:
            raise ValueError(f"program {program.name!r} reads the weights ({weight!r}): "
                             "call update(grads, state, params)")
        slot_trees = state[1:]
        # a factored slot is stored factored between steps and read spread over its leaves (as everywhere else)
        full_slots = [[jnp.broadcast_to(x, g.shape) for x, g in zip(treedef.flatten_up_to(tree), leaves)]
                      for tree in slot_trees]
        inputs = bind(program, dict(zip(slots, full_slots)),
                      weight=treedef.flatten_up_to(params) if weight else None, grad=leaves, lr=lr,
                      step=(state.count + 1).astype(jnp.float32) if step else None)
        space = TreeSpace(jnp)
        direction, *new_slots = run(program, space, inputs, constant_overrides)
        if not lr_arg:
            direction = space.map(lambda u: u * lr, direction)
        new_updates = [-u for u in _as_leaves(direction, leaves)]
        new_state = [treedef.unflatten([factor(x, held[s]) for x in _as_leaves(v, full)])
                     for s, v, full in zip(slots, new_slots, full_slots)]
        return (treedef.unflatten(new_updates),
                State(optax.safe_int32_increment(state.count), *new_state))

    return optax.GradientTransformationExtraArgs(init, update)


def optimizer_factory(program: Program) -> Callable[..., optax.GradientTransformationExtraArgs]:
    """``f(learning_rate, **hyperparameters)`` building the optimizer, with a real signature.

    The signature names every hyperparameter with its default, so
    ``optax.inject_hyperparams(optimizer_factory(program))(learning_rate=0.1, b1=0.95)``
    injects them as it does for optax's own optimizers.
    """
    defaults = hyperparameter_defaults(program)  # None: a name assigned two constants, kept as written

    def factory(learning_rate: ScalarOrSchedule = 1e-3, **overrides):
        return to_optax(program, learning_rate, **{k: v for k, v in overrides.items() if v is not None})

    params = [inspect.Parameter("learning_rate", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=1e-3)]
    params += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in defaults.items()]
    factory.__signature__ = inspect.Signature(params)
    factory.__name__ = factory.__qualname__ = program.name
    factory.__doc__ = f"The {program.name} update rule as an optax optimizer.\n\n{program}"
    return factory


def _as_leaves(value, like: list) -> list:
    """A program value as one array per leaf of ``like``, with that leaf's shape and dtype."""
    if not isinstance(value, list):
        value = [value] * len(like)
    return [jnp.broadcast_to(jnp.asarray(v), ref.shape).astype(ref.dtype) for v, ref in zip(value, like)]
