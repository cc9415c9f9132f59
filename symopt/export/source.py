"""A program as a standalone Python module: an optax optimizer that needs only jax and optax.

:func:`export_source` writes the module's text. It computes exactly what
:func:`symopt.to_optax` computes, with the library's semantics spelled out in
small helper functions (only those the program uses): hero's guarded division
``x / (y + 1e-8)``, ``sqrt``/``log`` of ``|x|``, tree-wide reductions summed per
leaf in float32 (at least) and then over the leaves in order, per-tensor norms
as trees of 0-d arrays, scalar and per-tensor outputs broadcast over each leaf
and cast back to the gradient's (update) or the parameter's (state) dtype, the
learning rate as a float or an optax schedule of the step count, ``t`` as
``count + 1`` in float32, and the update negated for optax.

Each program statement becomes one line: a ``tree_map`` over the leaves of the
trees it reads when its value is a tensor (or per-tensor) value, plain scalar
arithmetic otherwise; reductions inside an element-wise expression are computed
first, into temporaries.
"""

from __future__ import annotations

import textwrap

from symopt.export.emit import Dialect, Emitter, Names, camel, docstring, scope, signature, statements
from symopt.export.optax_export import state_type
from symopt.programs.checker import state_kinds
from symopt.programs.functions import Kind
from symopt.programs.program import Program

__all__ = ["export_source"]


# The exported module's own helpers; the library's reductions bring their definitions
# (Function.export in symopt/programs/functions.py; a scalar argument has an inline form,
# see _scalar_reduction).
_HELPERS: dict[str, str] = {
    '_leaf_sum': '''
def _leaf_sum(x):
    """The sum of one leaf, in float32 at least (so a bf16 tree keeps an accurate norm)."""
    return jnp.sum(x, dtype=jnp.promote_types(x.dtype, jnp.float32))
''',
    '_total': '''
def _total(tree):
    """The sum over all leaves of a tree, leaf by leaf in order."""
    total = 0
    for leaf in jax.tree_util.tree_leaves(tree):
        total = total + _leaf_sum(leaf)
    return total
''',
    '_rows_of': '''
def _rows_of(x):
    """A leaf that is the same along each row of its matrix view, stored as one column [..., 1] (a vector as is)."""
    return x[..., :1] if x.ndim >= 2 else x
''',
    '_cols_of': '''
def _cols_of(x):
    """A leaf that is the same along each column of its matrix view, stored as one row [1, ..., 1, cols]
    (a vector as [1], a 0-d leaf as it is)."""
    return x[(slice(0, 1),) * (x.ndim - 1)] if x.ndim >= 2 else x[:1] if x.ndim else x
''',
    '_matrices': '''
def _matrices(f, x):
    """f(m, ndim) on each leaf's matrix view m: [all axes but the last, the last]; a vector is one column."""
    def leaf(a):
        cols = a.shape[-1] if a.ndim >= 2 else 1
        return f(a.reshape(a.size // cols, cols), a.ndim).reshape(a.shape)
    return tree_map(leaf, x)
''',
    '_mean_over': '''
def _mean_over(m, axis):
    """The mean over one axis of a matrix, spread back over it; summed in float32 at least."""
    mean = jnp.mean(m, axis=axis, keepdims=True, dtype=jnp.promote_types(m.dtype, jnp.float32))
    return jnp.broadcast_to(mean.astype(m.dtype), m.shape)
''',
}

_LIKE = '''
def _like(value, ref):
    """A value (tensor leaf, per-tensor 0-d array or scalar) with the shape and dtype of ref."""
    return jnp.broadcast_to(jnp.asarray(value), ref.shape).astype(ref.dtype)
'''

# Names the module itself defines or reads inside the optimizer's functions.
_MODULE_NAMES = {"jax", "jnp", "optax", "NamedTuple", "collections", "tree_map", "_like", *_HELPERS}
_FACTORED_STORE = {Kind.ROWS: "_rows_of", Kind.COLS: "_cols_of"}  # how a factored state slot is stored
# Builtins the module reads.
_BUILTINS = {"callable", "hasattr", "ValueError"}
# Local names of the update function (program names that equal one of these are renamed).
_UPDATE_LOCALS = {"updates", "state", "params", "extra_args", "learning_rate", "ref"}
JAX = Dialect("jnp", _HELPERS, lambda f: f.export[0])
"""The optax module's array module and forms: Function.export (symopt/programs/functions.py)."""


def export_source(program: Program, name: str, framework: str = "optax") -> str:
    """The text of a standalone Python module that defines the optimizer ``name``.

    The module imports only ``jax``, ``jax.numpy``, ``optax`` and ``typing`` (or
    ``collections``, when a state slot cannot be a NamedTuple field name). It
    defines ``name(learning_rate=1e-3, *, <hyperparameters>=<defaults>)``
    returning an ``optax.GradientTransformationExtraArgs`` whose state is a
    NamedTuple of ``count`` and one tree per state slot, and computes exactly
    what ``symopt.to_optax(program, learning_rate, **hyperparameters)`` does.
    The hyperparameters are the names the program assigns a constant
    (``b1 = 0.9``); the docstring carries the program and its SymPy form.

    ``framework="torch"`` writes a PyTorch module instead: the class ``name``, a
    ``torch.optim.Optimizer`` that computes what ``symopt.to_torch(program)`` does
    (``symopt.export.torch_source``).

    Raises:
        TypeError: ``program`` is not a :class:`~symopt.Program` (optax-level
            baselines have no program to export).
        ValueError: ``name`` is not a Python identifier, or clashes with a name
            the module defines; or a hyperparameter's name does.
    """
    if framework == "torch":
        from symopt.export.torch_source import torch_source

        return torch_source(program, name)
    if framework != "optax":
        raise ValueError(f"framework {framework!r}: export_source writes 'optax' or 'torch' modules")
    state_name = camel(name) + "State" if isinstance(name, str) else ""
    defaults, names, local = scope(program, name, "export_source", _MODULE_NAMES | {state_name} | _BUILTINS,
                                   _UPDATE_LOCALS)
    hp_dict = names.fresh("hyperparameters")
    emitter = Emitter(program, local, names, JAX)
    fields, slot_field, factored = _slots(program)
    lr, body = _prologue(program, name, local, names, slot_field, factored, emitter)
    lines, outputs = statements(program, emitter, lambda k: f"{hp_dict}[{k!r}]", defaults)
    body += lines + _epilogue(program, names, state_name, slot_field, factored, lr, outputs)
    zeros = {slot_field[s]: f"tree_map(lambda p: {f}(jnp.zeros_like(p)), params)" for s, f in factored.items()}
    return _module(program, name, state_name, fields, defaults, hp_dict, body, emitter.helpers, zeros)


def _slots(program: Program) -> tuple[tuple[str, ...], dict[str, str], dict[str, str]]:
    """The state's NamedTuple fields (``count`` first), each slot's field, and the helper that stores each
    factored slot (``_rows_of``, ``_cols_of``)."""
    fields = state_type(program)._fields
    held = state_kinds(program)
    factored = {slot: _FACTORED_STORE[held[slot]] for slot in program.state_args if held[slot] in _FACTORED_STORE}
    return fields, dict(zip(program.state_args, fields[1:])), factored


def _prologue(program: Program, name: str, local: dict[str, str], names: Names, slot_field: dict[str, str],
              factored: dict[str, str], emitter: Emitter) -> tuple[str, list[str]]:
    """update()'s first lines: the learning rate, then the program's gradient, weights, step and state slots
    (a factored slot spread over its leaves). Returns (the learning rate's local name, the lines)."""
    weight, grad, lr_arg, step = (program.arg_for(r) for r in ("weight", "grad", "lr", "step"))
    body: list[str] = []
    lr = local[lr_arg] if lr_arg else names.fresh("lr")
    body.append(f"{lr} = learning_rate(state.count) if callable(learning_rate) else learning_rate")
    if grad:
        body.append(f"{local[grad]} = updates")
    if weight:
        body += ["if params is None:",
                 f"    raise ValueError({f'{name} reads the weights ({weight!r}): call update(grads, state, params)'!r})",
                 f"{local[weight]} = params"]
    if step:
        body.append(f"{local[step]} = (state.count + 1).astype(jnp.float32)")
    for slot in program.state_args:
        if slot in factored:  # stored factored between steps, read spread over its leaves
            body.append(f"{local[slot]} = tree_map(lambda s, ref: jnp.broadcast_to(s, ref.shape), "
                        f"state.{slot_field[slot]}, updates)")
            emitter.helpers.add(factored[slot])
        else:
            body.append(f"{local[slot]} = state.{slot_field[slot]}")
    return lr, body


def _epilogue(program: Program, names: Names, state_name: str, slot_field: dict[str, str],
              factored: dict[str, str], lr: str, outputs: list[tuple[str, Kind]]) -> list[str]:
    """update()'s last lines: optax's updates (the update negated, times the learning rate when the program
    takes none) and the new state, each value spread over its leaves (a factored slot stored factored)."""
    (update, update_kind), *slot_values = outputs
    scaled = (lambda u: u) if program.arg_for("lr") else (lambda u: f"{u} * {lr}")
    new_updates = names.fresh("new_updates")
    body = ["", ("# optax adds its updates: the update" if program.arg_for("lr") else
                 "# optax adds its updates: the update times the learning rate (the program takes no lr)")
            + ", spread over each leaf in the gradient's dtype, negated"]
    if update_kind == Kind.SCALAR:
        body.append(f"{new_updates} = tree_map(lambda ref: -_like({scaled(update)}, ref), updates)")
    else:
        body.append(f"{new_updates} = tree_map(lambda u, ref: -_like({scaled('u')}, ref), {update}, updates)")
    body += ["# the new state: each slot spread over its leaves in the parameters' dtype",
             f"return {new_updates}, {state_name}(",
             "    count=optax.safe_int32_increment(state.count),"]
    for slot, (value, kind) in zip(program.state_args, slot_values):
        field = slot_field[slot]
        if slot in factored:
            body.append(f"    {field}=tree_map(lambda v, ref, old: {factored[slot]}(_like(v, ref).astype(old.dtype)), "
                        f"{value}, updates, state.{field}),")
        elif kind == Kind.SCALAR:
            body.append(f"    {field}=tree_map(lambda ref: _like({value}, ref), state.{field}),")
        else:
            body.append(f"    {field}=tree_map(_like, {value}, state.{field}),")
    body.append(")")
    return body


def _docstring(program: Program, defaults: dict) -> str:
    weight = program.arg_for("weight")
    return docstring(program, "an optax optimizer", defaults,
                     "learning_rate: a float, or an optax schedule of the step count"
                     + (" (the program's lr)." if program.has_lr else "; it multiplies the program's update."),
                     "learning_rate",
                     "Returns:\n    An optax.GradientTransformationExtraArgs"
                     + (f"; its update(grads, state, params) needs params (the program reads {weight!r})."
                        if weight else "."))


def _module(program, name, state_name, fields, defaults, hp_dict, body, helpers, zeros) -> str:
    doc = _docstring(program, defaults)
    out = [f'"""The {name} optimizer: a standalone optax module exported by symopt.\n\n'
           f'It needs only jax and optax. The update rule:\n\n'
           f'{textwrap.indent(str(program), "    ")}"""\n',
           "import jax",
           "import jax.numpy as jnp",
           "import optax"]
    plain = all(not f.startswith("_") for f in fields)
    out.append("from typing import NamedTuple" if plain else "import collections")
    out += ["", f"__all__ = [{name!r}, {state_name!r}]", "", "tree_map = jax.tree_util.tree_map", "", ""]
    if plain:
        out.append(f"class {state_name}(NamedTuple):")
        out.append('    """The step count and one tree per state slot of the program."""\n')
        out.append("    count: jax.Array")
        out += [f"    {f}: optax.Updates" for f in fields[1:]]
    else:
        # (as symopt.to_optax names them: a slot that cannot be a field name is numbered)
        out.append(f"{state_name} = collections.namedtuple({state_name!r}, {list(fields)!r}, rename=True)")
    out.append("")
    out += JAX.definitions(helpers)
    out += [_LIKE.rstrip("\n"), "", ""]
    out.append(f"def {name}({', '.join(['learning_rate=0.001', *signature(defaults)])}) "
               f"-> optax.GradientTransformationExtraArgs:")
    out.append(textwrap.indent(f'"""{doc}\n"""', "    "))
    if defaults:
        out.append(f"    {hp_dict} = {{{', '.join(f'{k!r}: {k}' for k in defaults)}}}")
    out += ["", "    def init_fn(params):",
            "        zeros = tree_map(jnp.zeros_like, params)",
            f"        return {state_name}(jnp.zeros([], jnp.int32)"
            + "".join(f", {zeros.get(f, 'zeros')}" for f in fields[1:]) + ")",
            "", "    def update_fn(updates, state, params=None, **extra_args):",
            "        del extra_args"]
    out += [textwrap.indent(line, "        ") if line else "" for line in body]
    out += ["", "    return optax.GradientTransformationExtraArgs(init_fn, update_fn)", ""]
    return "\n".join(out)
