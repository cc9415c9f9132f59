"""Program statements as Python text over parameter trees: what every module of :func:`symopt.export_source` shares.

:class:`Emitter` writes each statement as one line: a ``tree_map`` over the trees it reads when its
value is a tensor (or per-tensor) value, plain scalar arithmetic otherwise; reductions inside an
element-wise expression are computed first, into temporaries. :func:`statements` writes a program's
body and return values that way. What differs between frameworks (the array module, the library's
forms, the module's own helpers) is a :class:`Dialect`: ``symopt.export.source`` has optax's,
``symopt.export.torch_source`` PyTorch's, where a tree is a list of tensors, one per parameter.
"""

from __future__ import annotations

import dataclasses
import keyword
import re
import textwrap
from typing import Callable

from symopt.export.layout import defaults as hyperparameter_defaults
from symopt.programs import spaces
from symopt.programs.checker import ARG_KINDS, check
from symopt.programs.functions import FUNCTIONS, Function, Kind
from symopt.programs.program import ATOM, PRECEDENCE, Call, Const, Expr, Program, Var, format_expr
from symopt.symbolic import to_sympy

DIV_EPS = repr(spaces.DIV_EPS)  # '1e-08', as the helpers write it
PARAMS = ("", "x", "x, y", "x, y, w")  # an element-wise helper's parameters, by arity


@dataclasses.dataclass(frozen=True)
class Dialect:
    """What one framework's exported module writes differently.

    ``xp``: the array module's name in the module (``jnp``, ``torch``); ``helpers``: the module's own
    helper definitions by name; ``form``: a library function's text (an element-wise body, or a
    reduction's whole definition); ``number``: text that makes a scalar that may be a Python number
    an array (``jnp`` takes numbers as they are).
    """

    xp: str
    helpers: dict[str, str]
    form: Callable[[Function], str]
    number: Callable[[str], str] = lambda text: text

    def definition(self, helper: str) -> str:
        """The text of a module-level helper: one of the module's own, or a library reduction's."""
        return self.helpers[helper] if helper in self.helpers else self.form(FUNCTIONS[helper])

    def calls(self, text: str) -> list[str]:
        """The helpers (the module's own and the reductions) that a helper's text calls, itself left out."""
        own = re.match(r"\s*def (\w+)", text)
        names = [*self.helpers, *(fn for fn, f in FUNCTIONS.items() if f.is_reduction)]
        return [n for n in names if n != (own and own.group(1)) and re.search(rf"(?<![\w.]){n}\(", text)]

    def scalar_reduction(self, fn: str, args: list[str]) -> str:
        """A reduction of scalar arguments, inline: the tree-wide sum of one number is that number."""
        xp, number = self.xp, self.number

        def gn(a):
            return f"{xp}.sqrt({xp}.square({number(a)}))"
        if fn in ("global_norm", "norm"):
            return gn(args[0])
        if fn == "dot":
            return f"({args[0]}) * ({args[1]})"
        if fn == "cosine_sim":
            x, y = args
            return f"({x}) * ({y}) / ({gn(x)} * {gn(y)} + {DIV_EPS})"
        if fn == "clip_by_global_norm":
            x, c = args
            return f"({x}) * {xp}.minimum({number('1.0')}, {number(f'({c}) / ({gn(x)} + {DIV_EPS})')})"
        if fn in ("row_mean", "col_mean"):
            return args[0]  # a scalar is the same along every row and column
        raise AssertionError(fn)

    def definitions(self, helpers: set[str]) -> list[str]:
        """The module-level definitions of ``helpers``: element-wise functions in library order, then the
        module's own helpers and the reductions."""
        out = []
        for fn, f in FUNCTIONS.items():
            if fn in helpers and not f.is_reduction:
                out += ["", f"def {fn}({PARAMS[f.arity]}):", f'    """{f.export[1]}"""',
                        f"    return {self.form(f)}", ""]
        for helper in [*self.helpers, *(fn for fn, f in FUNCTIONS.items() if f.is_reduction)]:
            if helper in helpers:
                out += ["\n" + self.definition(helper).strip("\n"), ""]
        return out


class Names:
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


class Emitter:
    """Program expressions as Python text over trees (tensor and per-tensor values) and scalars."""

    def __init__(self, program: Program, local: dict[str, str], names: Names, dialect: Dialect):
        self.dialect = dialect
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
            return self.dialect.scalar_reduction(fn, [self.value(a) for a in expr.args])
        self._use(fn)
        return f"{fn}({', '.join(self.value(a) for a in expr.args)})"

    def _use(self, helper: str) -> None:
        if helper in self.helpers:
            return
        self.helpers.add(helper)
        for dep in self.dialect.calls(self.dialect.definition(helper)):
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
            # Scalars may be Python floats: the array module's divide gives inf where Python would raise.
            return f"{self.dialect.xp}.divide({self.dialect.number(args[0][0])}, {denominator})", ATOM
        y = y if yp > prec else f"({y})"
        return f"{x} {expr.fn} {y}", prec

    def _read(self, name: str, kind: Kind) -> str:
        if kind != Kind.SCALAR and name not in self.trees:
            self.trees.append(name)
        return name



def statements(program: Program, emitter: Emitter, hyperparameter: Callable[[str], str],
               defaults: dict) -> tuple[list[str], list[tuple[str, Kind]]]:
    """The program's statements as lines (each after a comment with the statement), then its return values'
    temporaries; and each return value's name and kind. ``hyperparameter(k)`` is the text that reads the
    value of hyperparameter ``k`` (None: keep the program's constants as written)."""
    body, local, names = [], emitter.local, emitter.names
    for stmt in program.body:
        target = local[stmt.target]
        kind = emitter.kind(stmt.value)
        emitter.pre = []
        text = f"# {stmt.target} = {format_expr(stmt.value)}"
        if stmt.target in defaults and isinstance(stmt.value, Const):
            value = hyperparameter(stmt.target)
            code = f"{stmt.value.value!r} if {value} is None else {value}" if defaults[stmt.target] is None else value
        else:
            code = emitter.value(stmt.value)
        emitter.kinds[stmt.target] = kind
        body += ["", text, *emitter.pre, f"{target} = {code}"]

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
    return body, outputs


def camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "Optimizer"




def scope(program: Program, name: str, caller: str, module_names: set[str],
          update_locals: set[str]) -> tuple[dict, Names, dict[str, str]]:
    """Check the program and the module's name; return the hyperparameters' defaults (None: as written), the
    names taken, and the local name of each program name (renamed where it clashes with the module's)."""
    if not isinstance(program, Program):
        what = type(program).__name__
        hint = (" (an optax-level baseline has no program text: use its to_optax() instead)"
                if hasattr(program, "to_optax") else "; use symopt.parse(text) to make one")
        raise TypeError(f"{caller}() needs a symopt.Program, got {what}{hint}")
    check(program)
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"optimizer name {name!r} is not a Python identifier")
    module_names = module_names | set(FUNCTIONS)
    if name in module_names:
        raise ValueError(f"optimizer name {name!r} clashes with a name the exported module uses; choose another")
    defaults = {k: v for k, v in hyperparameter_defaults(program).items() if k != "learning_rate"}
    for k in defaults:
        if k in module_names:
            raise ValueError(f"hyperparameter {k!r} of program {program.name!r} clashes with a name the "
                             f"exported module uses ({k} would become an argument of {name}()); rename it")
    program_names = set(program.args) | {s.target for s in program.body}
    reserved = module_names | update_locals
    names = Names(reserved | program_names | set(defaults))
    local = {n: names.fresh(n) if n in reserved else n for n in sorted(program_names)}
    return defaults, names, local


def signature(defaults: dict) -> list[str]:
    """The hyperparameters as keyword-only arguments with their defaults."""
    return ["*", *(f"{k}={v!r}" for k, v in defaults.items())] if defaults else []


def docstring(program: Program, what: str, defaults: dict, lr_doc: str, lr_name: str, returns: str) -> str:
    """The optimizer's docstring: the program, its math (SymPy), its arguments; escaped for a \"\"\" string."""
    form = to_sympy(program)
    math = "\n".join(f"{k} = {v}" for k, v in [("update", form.update), *form.state.items()])
    args = [lr_doc] + [f"{k}: None keeps the program's constants as written." if v is None
                       else f"{k}: the program's '{k} = {v!r}'." for k, v in defaults.items()]
    text = (f"The {program.name!r} update rule as {what} (exported by symopt).\n\n"
            f"The new parameters are {'w - update' if program.has_lr else f'w - {lr_name} * update'}, "
            f"from the program:\n\n"
            f"{textwrap.indent(str(program), '    ')}\n"
            f"As math (SymPy; each x / y runs as x / (y + 1e-8); the state on the right is the old state):\n\n"
            f"{textwrap.indent(math, '    ')}\n\n"
            f"Args:\n{textwrap.indent(chr(10).join(args), '    ')}\n\n"
            f"{returns}")
    assert '"""' not in text
    return text.replace("\\", "\\\\")
