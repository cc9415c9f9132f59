"""A program as a standalone PyTorch module: ``export_source(program, name, framework="torch")``.

The module needs only torch. It defines the class ``name``, a ``torch.optim.Optimizer`` that
computes what :func:`symopt.to_torch` computes: each parameter group's tensors are a list (a
"tree" of the program), statements run as in the optax module (:mod:`symopt.export.emit`, one
line each) with the library's torch forms (``Function.torch``), numbers made float32 0-d tensors
where a torch function wants a tensor (``_tensor``), tree-wide sums in float32 at least, ``t`` the
group's step count in float32, and the update and new state spread over each parameter in its
dtype before the parameters are updated in place.
"""

from __future__ import annotations

import textwrap

from symopt.export.emit import Dialect, Emitter, docstring, scope, signature, statements
from symopt.programs.checker import calls, state_kinds
from symopt.programs.functions import FUNCTIONS, OPERATORS, Kind
from symopt.programs.program import Program

__all__ = ["CONSTRUCTOR_ARGS", "DTYPES", "check_torch_forms", "torch_source"]

# The module's own helpers (tree_map, _tensor and _like are always written); the library's reductions bring
# their definitions (Function.torch).
_HELPERS: dict[str, str] = {
    '_leaf_sum': '''
def _leaf_sum(x):
    """The sum of one tensor, in float32 at least (so bf16 parameters keep an accurate norm)."""
    return torch.sum(x, dtype=torch.promote_types(x.dtype, torch.float32))
''',
    '_total': '''
def _total(tree):
    """The sum over all tensors of a list, tensor by tensor in order."""
    total = 0
    for leaf in tree:
        total = total + _leaf_sum(leaf)
    return total
''',
    '_rows_of': '''
def _rows_of(x):
    """A tensor that is the same along each row of its matrix view, stored as one column [..., 1] (a vector as is)."""
    return x[..., :1].clone() if x.ndim >= 2 else x
''',
    '_cols_of': '''
def _cols_of(x):
    """A tensor that is the same along each column of its matrix view, stored as one row [1, ..., 1, cols]
    (a vector as [1], a 0-d tensor as it is)."""
    return x[(slice(0, 1),) * (x.ndim - 1)].clone() if x.ndim >= 2 else x[:1].clone() if x.ndim else x
''',
    '_matrices': '''
def _matrices(f, x):
    """f(m, ndim) on each tensor's matrix view m: [all axes but the last, the last]; a vector is one column."""
    def leaf(a):
        cols = a.shape[-1] if a.ndim >= 2 else 1
        return f(a.reshape(a.numel() // cols, cols), a.ndim).reshape(a.shape)
    return tree_map(leaf, x)
''',
    '_mean_over': '''
def _mean_over(m, axis):
    """The mean over one axis of a matrix, spread back over it; summed in float32 at least."""
    mean = torch.mean(m, dim=axis, keepdim=True, dtype=torch.promote_types(m.dtype, torch.float32))
    return torch.broadcast_to(mean.to(m.dtype), m.shape)
''',
}

_PRELUDE = '''
def tree_map(f, *trees):
    """f on each parameter's tensors in turn: a tree is a list of tensors, one per parameter of a group."""
    return [f(*leaves) for leaves in zip(*trees)]


def _tensor(x):
    """A number as a float32 0-d tensor (a tensor as it is): torch's functions take tensors, and a 0-d tensor
    leaves a bf16 tensor bf16."""
    return x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=torch.float32)


def _like(value, ref):
    """A value (a tensor, a 0-d tensor or a number) as a new tensor of ref's shape, dtype and device."""
    return torch.empty_like(ref).copy_(_tensor(value))
'''

TORCH = Dialect("torch", _HELPERS, lambda f: f.torch, lambda text: f"_tensor({text})")
"""The torch module's array module and forms: Function.torch (symopt/programs/functions.py)."""

_MODULE_NAMES = {"torch", "tree_map", "_tensor", "_like", "DTYPES", *_HELPERS}
DTYPES = ("float32", "bfloat16", "float16", "float64")
"""The parameter dtypes (names in torch) an exported optimizer takes; its state keeps each parameter's dtype."""
CONSTRUCTOR_ARGS = ("self", "params", "lr")
"""The optimizer constructor's own arguments: no hyperparameter can take their names."""
_FACTORED_STORE = {Kind.ROWS: "_rows_of", Kind.COLS: "_cols_of"}  # how a factored state slot is stored
# Builtins the module reads (the library's max, min and abs shadow Python's: the module does not use those).
_BUILTINS = {"isinstance", "len", "float", "enumerate", "zip", "map", "str", "super", "slice", "TypeError",
             "RuntimeError", "ValueError"}
# Local names of _step_group and its lambdas' parameters (program names that equal one of these are renamed).
_STEP_LOCALS = {"self", "group", "params", "states", "count", "p", "s", "u", "i"}

_CLASS_BODY = '''
    def __init__(self, params, {signature}):
        if not isinstance(lr, torch.Tensor) and lr < 0:
            raise ValueError(f"invalid learning rate: {{lr}}")
        super().__init__(params, {{{options}}})

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        for i, p in enumerate(self.param_groups[-1]["params"]):
            if p.dtype not in DTYPES:
                del self.param_groups[-1]
                raise TypeError(f"{name}: parameter {{i}} of group {{len(self.param_groups)}} is {{p.dtype}}; "
                                f"it takes parameters of dtype {{', '.join(map(str, DTYPES))}}")

    @torch.no_grad()
    def step(self, closure=None):
        """One step of every parameter group; closure re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if p.grad.layout != torch.strided:
                    raise RuntimeError(f"{name}: a parameter of group {{index}} has a sparse gradient "
                                       f"({{p.grad.layout}}); {name} needs dense gradients (use "
                                       f"torch.optim.SparseAdam for sparse ones, or nn.Embedding(..., sparse=False))")
            if params:
                self._step_group(group, params)
        return loss

    def _step_group(self, group, params):
        """One step of a group's parameters that have a gradient; the program reads them as lists of tensors."""
        states = [self.state[p] for p in params]
        for p, s in zip(params, states):
            if not s:  # a parameter's first step: its slots start at zero
                s["step"] = torch.tensor(0.0)
'''


def torch_source(program: Program, name: str) -> str:
    """The text of a standalone PyTorch module that defines the optimizer class ``name`` (see the module's
    docstring and :func:`symopt.export_source`)."""
    defaults, names, local = scope(program, name, "export_source", _MODULE_NAMES | _BUILTINS, _STEP_LOCALS)
    check_torch_forms(program, defaults)
    emitter = Emitter(program, local, names, TORCH)
    weight, grad, lr_arg, step = (program.arg_for(r) for r in ("weight", "grad", "lr", "step"))
    held = state_kinds(program)
    factored = {slot: _FACTORED_STORE[held[slot]] for slot in program.state_args if held[slot] in _FACTORED_STORE}
    emitter.helpers |= set(factored.values())
    start = [f"s[{slot!r}] = {factored[slot]}(torch.zeros_like(p))" if slot in factored
             else f"s[{slot!r}] = torch.zeros_like(p)" for slot in program.state_args]

    lr = local[lr_arg] if lr_arg else names.fresh("lr")
    body = ["count = float(torch.stack([s['step'] for s in states]).max()) + 1  # the group's step count, t",
            f"{lr} = group['lr']"]
    if grad:
        body.append(f"{local[grad]} = [p.grad for p in params]")
    if weight:
        body.append(f"{local[weight]} = list(params)")
    if step:
        body.append(f"{local[step]} = torch.tensor(count, dtype=torch.float32)")
    for slot in program.state_args:
        if slot in factored:  # stored factored between steps, read spread over its parameter
            body.append(f"{local[slot]} = [torch.broadcast_to(s[{slot!r}], p.shape) for s, p in zip(states, params)]")
        else:
            body.append(f"{local[slot]} = [s[{slot!r}] for s in states]")
    lines, outputs = statements(program, emitter, lambda k: f"group[{k!r}]", defaults)
    body += lines

    (update, update_kind), *slot_values = outputs
    updates, new_state_name = names.fresh("updates"), names.fresh("new_state")
    scaled = (lambda u: u) if lr_arg else (lambda u: f"{u} * {lr}")
    body += ["", "# the update" + ("" if lr_arg else " times the learning rate (the program takes no lr)")
             + " and the new state, spread over each parameter in its dtype"]
    if update_kind == Kind.SCALAR:
        body.append(f"{updates} = tree_map(lambda p: _like({scaled(update)}, p), params)")
    else:
        body.append(f"{updates} = tree_map(lambda u, p: _like({scaled('u')}, p), {update}, params)")
    new_state = []
    for slot, (value, kind) in zip(program.state_args, slot_values):
        like = f"_like({value}, p)" if kind == Kind.SCALAR else "_like(v, p)"
        like = f"{factored[slot]}({like})" if slot in factored else like
        new_state.append(f"{slot!r}: tree_map(lambda p: {like}, params)," if kind == Kind.SCALAR
                         else f"{slot!r}: tree_map(lambda v, p: {like}, {value}, params),")
    body += [f"{new_state_name} = {{", *(f"    {line}" for line in new_state), "}",
             "# w - update, in place",
             f"for p, u in zip(params, {updates}):",
             "    p.sub_(u)",
             "for i, s in enumerate(states):",
             "    s['step'] = torch.tensor(count)",
             f"    s.update({{k: v[i] for k, v in {new_state_name}.items()}})"]
    return _module(program, name, defaults, body, start, emitter.helpers)


def check_torch_forms(program: Program, defaults: dict) -> None:
    """Refuse a (checked) program that calls a function with no torch form (``Function.torch``; every library
    function has one), or that names a hyperparameter as one of the constructor's own arguments (``lr``)."""
    missing = sorted(fn for fn in calls(program) if fn not in OPERATORS and not FUNCTIONS[fn].torch)
    if missing:
        raise ValueError(f"program {program.name!r} calls {', '.join(map(repr, missing))}, which has no torch form: "
                         f"give its Function a torch= form in symopt/programs/functions.py")
    clash = [k for k in defaults if k in CONSTRUCTOR_ARGS]
    if clash:
        raise ValueError(f"hyperparameter {clash[0]!r} of program {program.name!r} clashes with the torch "
                         f"optimizer's own argument {clash[0]!r}; rename it")


def _docstring(program: Program, name: str, defaults: dict) -> str:
    return docstring(program, "a torch.optim.Optimizer", defaults,
                     "params: the parameters to optimize, or dicts defining parameter groups.\n"
                     "lr: the learning rate" + (" (the program's lr)." if program.has_lr
                                                else "; it multiplies the program's update."),
                     "lr",
                     f"Use: opt = {name}(model.parameters(), lr=1e-3); loss.backward(); opt.step(); opt.zero_grad()."
                     "\nTree-wide functions (global_norm, dot, ...) are over all of a group's parameters that have "
                     "a\ngradient; t is the group's step count.")


def _module(program: Program, name: str, defaults: dict, body: list[str], start: list[str], helpers: set) -> str:
    options = ", ".join(f"{k!r}: {k}" for k in ["lr", *defaults])
    out = [f'"""The {name} optimizer: a standalone PyTorch module exported by symopt.\n\n'
           f'It needs only torch. The update rule:\n\n'
           f'{textwrap.indent(str(program), "    ")}"""\n',
           "import torch", "", f"__all__ = [{name!r}]", "",
           f"DTYPES = ({', '.join(f'torch.{d}' for d in DTYPES)})",
           '"""The parameter dtypes the optimizer takes; its state keeps each parameter\'s dtype."""', ""]
    out += [_PRELUDE.rstrip("\n"), ""]
    out += TORCH.definitions(helpers)
    out += ["", f"class {name}(torch.optim.Optimizer):",
            textwrap.indent(f'"""{_docstring(program, name, defaults)}\n"""', "    ")]
    out.append(_CLASS_BODY.format(signature=", ".join(["lr=0.001", *signature(defaults)]), options=options,
                                  name=name).rstrip("\n"))
    out += [f"                {line}" for line in start]
    out += [textwrap.indent(line, "        ") if line else "" for line in body]
    out.append("")
    return "\n".join(out)
