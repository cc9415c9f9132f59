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

import keyword
import re
import textwrap

from symopt.export.optax_export import state_type
from symopt.programs import functions
from symopt.programs.checker import ARG_KINDS, check, state_kinds
from symopt.programs.execute import hyperparameters as program_hyperparameters
from symopt.programs.functions import FUNCTIONS, Kind
from symopt.programs.program import ATOM, PRECEDENCE, Call, Const, Expr, Program, Var, format_expr
from symopt.symbolic import to_sympy

__all__ = ["export_source"]

DIV_EPS = repr(functions.DIV_EPS)  # '1e-08', as the helpers below write it


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
_PARAMS = ("", "x", "x, y", "x, y, w")  # an element-wise helper's parameters, by arity
# Builtins the module reads.
_BUILTINS = {"callable", "hasattr", "ValueError"}
# Local names of the update function (program names that equal one of these are renamed).
_UPDATE_LOCALS = {"updates", "state", "params", "extra_args", "learning_rate", "ref"}


def _definition(helper: str) -> str:
    """The text of a module-level helper: one of the module's own, or a library reduction's."""
    return _HELPERS[helper] if helper in _HELPERS else FUNCTIONS[helper].export[0]


def _calls(text: str) -> list[str]:
    """The helpers (the module's own and the reductions) that a helper's text calls, itself left out."""
    own = re.match(r"\s*def (\w+)", text)
    names = [*_HELPERS, *(fn for fn, f in FUNCTIONS.items() if f.is_reduction)]
    return [n for n in names if n != (own and own.group(1)) and re.search(rf"(?<![\w.]){n}\(", text)]


def _scalar_reduction(fn: str, args: list[str]) -> str:
    """A reduction of scalar arguments, inline: the tree-wide sum of one number is that number."""
    def gn(a):
        return f"jnp.sqrt(jnp.square({a}))"
    if fn in ("global_norm", "norm"):
        return gn(args[0])
    if fn == "dot":
        return f"({args[0]}) * ({args[1]})"
    if fn == "cosine_sim":
        x, y = args
        return f"({x}) * ({y}) / ({gn(x)} * {gn(y)} + {DIV_EPS})"
    if fn == "clip_by_global_norm":
        x, c = args
        return f"({x}) * jnp.minimum(1.0, ({c}) / ({gn(x)} + {DIV_EPS}))"
    if fn in ("row_mean", "col_mean"):
        return args[0]  # a scalar is the same along every row and column
    raise AssertionError(fn)


class _Names:
    """Fresh identifiers that clash with nothing taken."""

    def __init__(self, taken):
        self.taken = set(taken)

    def fresh(self, base: str) -> str:
        """``base``, else ``base_``, ``base_2``, ``base_3``, ...: the first one not taken."""
        name, n = base, 1
        while name in self.taken or keyword.iskeyword(name):
            n += 1
            name = f"{base}_" if n == 2 else f"{base}_{n - 1}"
        self.taken.add(name)
        return name


class _Emitter:
    """Program expressions as Python text over trees (tensor and per-tensor values) and scalars."""

    def __init__(self, program: Program, local: dict[str, str], names: _Names):
        self.local = local
        self.names = names
        self.kinds: dict[str, Kind] = {a: ARG_KINDS[program.role(a)] for a in program.args}
        self.pre: list[str] = []       # temporaries to compute before the current statement
        self.trees: list[str] = []     # the trees the current tree_map lambda reads
        self.helpers: set[str] = set()

    # -- kinds -----------------------------------------------------------------------

    def kind(self, expr: Expr) -> Kind:
        if isinstance(expr, Const):
            return Kind.SCALAR
        if isinstance(expr, Var):
            return self.kinds[expr.name]
        return FUNCTIONS[expr.fn].shape(tuple(self.kind(a) for a in expr.args))

    # -- values in the update function's scope ----------------------------------------

    def value(self, expr: Expr) -> str:
        """Text that evaluates to the expression's value: a tree, or a scalar."""
        if isinstance(expr, Var):
            return self.local[expr.name]
        if self.kind(expr) == Kind.SCALAR:
            return self.leaf(expr, hoist=False)[0]
        if FUNCTIONS[expr.fn].is_reduction:
            return self.reduction(expr)
        outer, self.trees = self.trees, []
        code, _ = self.leaf(expr, hoist=True)
        trees, self.trees = self.trees, outer
        return f"tree_map(lambda {', '.join(trees)}: {code}, {', '.join(trees)})"

    def reduction(self, expr: Call) -> str:
        fn = expr.fn
        if all(self.kind(a) == Kind.SCALAR for a in expr.args):
            return _scalar_reduction(fn, [self.value(a) for a in expr.args])
        self._use(fn)
        return f"{fn}({', '.join(self.value(a) for a in expr.args)})"

    def _use(self, helper: str) -> None:
        if helper in self.helpers:
            return
        self.helpers.add(helper)
        for dep in _calls(_definition(helper)):
            self._use(dep)

    # -- element-wise text (inside a tree_map lambda, or plain scalar arithmetic) -----

    def leaf(self, expr: Expr, hoist: bool) -> tuple[str, int]:
        """Text of one leaf of the value, and its precedence; trees read go to ``self.trees``."""
        if isinstance(expr, Const):
            return repr(expr.value), (ATOM if expr.value >= 0 else 0)
        if isinstance(expr, Var):
            return self._read(self.local[expr.name], self.kinds[expr.name]), ATOM
        fn = FUNCTIONS[expr.fn]
        if fn.is_reduction:
            code = self.reduction(expr)
            kind = self.kind(expr)
            if not hoist:
                return code, ATOM if code.startswith(expr.fn) else 0
            temp = self.names.fresh(f"_{expr.fn}")
            self.pre.append(f"{temp} = {code}")
            return self._read(temp, kind), ATOM
        args = [self.leaf(a, hoist) for a in expr.args]
        if expr.fn not in PRECEDENCE:
            self.helpers.add(expr.fn)
            return f"{expr.fn}({', '.join(code for code, _ in args)})", ATOM
        prec = PRECEDENCE[expr.fn]
        if expr.fn == "neg":
            (x, xp), = args
            return "-" + (x if xp == ATOM else f"({x})"), prec
        (x, xp), (y, yp) = args
        x = x if xp >= prec else f"({x})"
        if expr.fn == "/":
            denominator = f"{y} + {DIV_EPS}" if yp >= 1 else f"({y}) + {DIV_EPS}"
            if any(self.kind(a) != Kind.SCALAR for a in expr.args):
                return f"{x} / ({denominator})", prec
            # Scalars may be Python floats: jnp.divide gives inf where Python would raise.
            return f"jnp.divide({args[0][0]}, {denominator})", ATOM
        y = y if yp > prec else f"({y})"
        return f"{x} {expr.fn} {y}", prec

    def _read(self, name: str, kind: Kind) -> str:
        if kind != Kind.SCALAR and name not in self.trees:
            self.trees.append(name)
        return name


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "Optimizer"


def export_source(program: Program, name: str) -> str:
    """The text of a standalone Python module that defines the optimizer ``name``.

    The module imports only ``jax``, ``jax.numpy``, ``optax`` and ``typing`` (or
    ``collections``, when a state slot cannot be a NamedTuple field name). It
    defines ``name(learning_rate=1e-3, *, <hyperparameters>=<defaults>)``
    returning an ``optax.GradientTransformationExtraArgs`` whose state is a
    NamedTuple of ``count`` and one tree per state slot, and computes exactly
    what ``symopt.to_optax(program, learning_rate, **hyperparameters)`` does.
    The hyperparameters are the names the program assigns a constant
    (``b1 = 0.9``); the docstring carries the program and its SymPy form.

    Raises:
        TypeError: ``program`` is not a :class:`~symopt.Program` (optax-level
            baselines have no program to export).
        ValueError: ``name`` is not a Python identifier, or clashes with a name
            the module defines; or a hyperparameter's name does.
    """
    state_name, module_names = _check_names(program, name)
    defaults, as_written = _hyperparameters(program, name, module_names)
    program_names = set(program.args) | {s.target for s in program.body}
    reserved = module_names | _UPDATE_LOCALS
    names = _Names(reserved | program_names | set(defaults))
    local = {}
    for n in sorted(program_names):
        local[n] = names.fresh(n) if n in reserved else n
    hp_dict = names.fresh("hyperparameters")
    emitter = _Emitter(program, local, names)
    fields = state_type(program)._fields
    slot_field = dict(zip(program.state_args, fields[1:]))
    held = state_kinds(program)
    factored = {slot: _FACTORED_STORE[held[slot]] for slot in program.state_args if held[slot] in _FACTORED_STORE}

    lr, body = _prologue(program, name, local, names, slot_field, factored, emitter)
    body += _statements(program, local, defaults, as_written, hp_dict, emitter)
    outputs, lines = _returns(program, local, names, emitter)
    body += lines + _epilogue(program, names, state_name, slot_field, factored, lr, outputs)
    zeros = {slot_field[s]: f"tree_map(lambda p: {f}(jnp.zeros_like(p)), params)" for s, f in factored.items()}
    return _module(program, name, state_name, fields, defaults, as_written, hp_dict, body, emitter.helpers, zeros)


def _check_names(program: Program, name: str) -> tuple[str, set[str]]:
    """The program checked and the optimizer's name free: (its state class's name, the names the module uses)."""
    if not isinstance(program, Program):
        what = type(program).__name__
        hint = (" (an optax-level baseline has no program text: use its to_optax() instead)"
                if hasattr(program, "to_optax") else "; use symopt.parse(text) to make one")
        raise TypeError(f"export_source() needs a symopt.Program, got {what}{hint}")
    check(program)
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"optimizer name {name!r} is not a Python identifier")
    state_name = _camel(name) + "State"
    module_names = _MODULE_NAMES | set(FUNCTIONS) | {state_name} | _BUILTINS
    if name in module_names:
        raise ValueError(f"optimizer name {name!r} clashes with a name the exported module uses; choose another")
    return state_name, module_names


def _hyperparameters(program: Program, name: str, module_names: set[str]) -> tuple[dict, set[str]]:
    """The optimizer's keyword arguments with their defaults (the names the program assigns a constant), and
    those assigned different constants in two places: None keeps each as written (to_optax replaces every
    constant assignment of a name it overrides)."""
    defaults = {k: v for k, v in program_hyperparameters(program).items() if k != "learning_rate"}
    for k in defaults:
        if k in module_names:
            raise ValueError(f"hyperparameter {k!r} of program {program.name!r} clashes with a name the "
                             f"exported module uses ({k} would become an argument of {name}()); rename it")
    as_written = {k for k in defaults
                  if len({s.value.value for s in program.body
                          if s.target == k and isinstance(s.value, Const)}) > 1}
    return defaults, as_written


def _prologue(program: Program, name: str, local: dict[str, str], names: "_Names", slot_field: dict[str, str],
              factored: dict[str, str], emitter: "_Emitter") -> tuple[str, list[str]]:
    """update()'s first lines: the learning rate, the program's arguments bound to the gradient, the weights,
    the step and the state slots (a factored slot spread over its leaves). Returns (the lr's name, the lines)."""
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


def _statements(program: Program, local: dict[str, str], defaults: dict, as_written: set[str], hp_dict: str,
                emitter: "_Emitter") -> list[str]:
    """The program's statements, each after a comment of it as written; a hyperparameter reads its argument."""
    body: list[str] = []
    for stmt in program.body:
        target = local[stmt.target]
        kind = emitter.kind(stmt.value)
        emitter.pre = []
        text = f"# {stmt.target} = {format_expr(stmt.value)}"
        if stmt.target in defaults and isinstance(stmt.value, Const):
            value = f"{hp_dict}[{stmt.target!r}]"
            if stmt.target in as_written:
                value = f"{stmt.value.value!r} if {value} is None else {value}"
            code = value
        else:
            code = emitter.value(stmt.value)
        emitter.kinds[stmt.target] = kind
        body += ["", text, *emitter.pre, f"{target} = {code}"]
    return body


def _returns(program: Program, local: dict[str, str], names: "_Names",
             emitter: "_Emitter") -> tuple[list[tuple[str, Kind]], list[str]]:
    """The returned values, each a name (a returned expression is computed into a fresh one): ((name, kind) of
    the update and of each new state, the lines that compute them)."""
    body: list[str] = []
    outputs = []
    for i, expr in enumerate(program.returns):
        emitter.pre = []
        if isinstance(expr, Var):
            outputs.append((local[expr.name], emitter.kind(expr)))
            continue
        temp = names.fresh("update" if i == 0 else f"new_{program.state_args[i - 1]}")
        code = emitter.value(expr)
        body += ["", f"# return value {i + 1}: {format_expr(expr)}", *emitter.pre, f"{temp} = {code}"]
        outputs.append((temp, emitter.kind(expr)))
    return outputs, body


def _epilogue(program: Program, names: "_Names", state_name: str, slot_field: dict[str, str],
              factored: dict[str, str], lr: str, outputs: list[tuple[str, Kind]]) -> list[str]:
    """update()'s last lines: optax's updates (the update negated, times the lr when the program takes none)
    and the new state, each value spread over its leaves."""
    lr_arg = program.arg_for("lr")
    (update, update_kind), *slot_values = outputs
    scaled = (lambda u: u) if lr_arg else (lambda u: f"{u} * {lr}")
    new_updates = names.fresh("new_updates")
    body = ["", ("# optax adds its updates: the update" if lr_arg else
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


def _docstring(program: Program, name: str, defaults: dict, as_written: set) -> str:
    form = to_sympy(program)
    math = "\n".join(f"{k} = {v}" for k, v in [("update", form.update), *form.state.items()])
    args = ["learning_rate: a float, or an optax schedule of the step count"
            + (" (the program's lr)." if program.has_lr else "; it multiplies the program's update.")]
    for k, v in defaults.items():
        args.append(f"{k}: None keeps the program's constants as written." if k in as_written
                    else f"{k}: the program's '{k} = {v!r}'.")
    weight = program.arg_for("weight")
    text = (f"The {program.name!r} update rule as an optax optimizer (exported by symopt).\n\n"
            f"The new parameters are {'w - update' if program.has_lr else 'w - learning_rate * update'}, "
            f"from the program:\n\n"
            f"{textwrap.indent(str(program), '    ')}\n"
            f"As math (SymPy; each x / y runs as x / (y + 1e-8); the state on the right is the old state):\n\n"
            f"{textwrap.indent(math, '    ')}\n\n"
            f"Args:\n{textwrap.indent(chr(10).join(args), '    ')}\n\n"
            f"Returns:\n    An optax.GradientTransformationExtraArgs"
            + (f"; its update(grads, state, params) needs params (the program reads {weight!r})." if weight else ".")
            )
    assert '"""' not in text
    return text.replace("\\", "\\\\")


def _module(program, name, state_name, fields, defaults, as_written, hp_dict, body, helpers, zeros) -> str:
    doc = _docstring(program, name, defaults, as_written)
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
    for fn, f in FUNCTIONS.items():  # library order
        if fn in helpers and not f.is_reduction:
            expr, fdoc = f.export
            out += ["", f"def {fn}({_PARAMS[f.arity]}):", f'    """{fdoc}"""', f"    return {expr}", ""]
    for helper in [*_HELPERS, *(fn for fn, f in FUNCTIONS.items() if f.is_reduction)]:
        if helper in helpers:
            out += ["\n" + _definition(helper).strip("\n"), ""]
    out += [_LIKE.rstrip("\n"), "", ""]
    sig = ["learning_rate=0.001"]
    if defaults:
        sig.append("*")
        sig += [f"{k}=None" if k in as_written else f"{k}={v!r}" for k, v in defaults.items()]
    out.append(f"def {name}({', '.join(sig)}) -> optax.GradientTransformationExtraArgs:")
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
