"""A program as a ``torch.optim.Optimizer``: :func:`to_torch`.

The optimizer interprets the parsed program, as :func:`symopt.to_optax` does: each step runs
:func:`symopt.programs.execute.run` on the tensors of one parameter group, stored as a
:class:`~symopt.programs.spaces.TreeSpace` of lists (one tensor per parameter), with the
library's numeric forms on :data:`symopt.export.torch_array.xp`, torch under NumPy's names. So a
tree-wide function (``global_norm``, ``dot``, ``cosine_sim``, ``clip_by_global_norm``) is over all
the parameters of a group that have a gradient, summed in float32 at least, as in the interpreter.

Conventions are torch.optim's: ``Cls(params, lr=1e-3, **hyperparameters)`` with params or param
groups; the hyperparameters (the names the program assigns a constant, ``b1 = 0.9``) are options
of every group with the found values as defaults, so ``torch.optim.lr_scheduler`` drives ``lr``
and a group can set its own ``b1``; ``step(closure=None)`` updates the parameters in place under
``torch.no_grad()``; ``state_dict()`` / ``load_state_dict()`` carry each parameter's ``step`` and
slots (a factored slot stored as a row or a column, :mod:`symopt.export.layout`). Parameters that
have no gradient are skipped, as torch's optimizers skip them. This module imports torch: import
it through :func:`symopt.to_torch`, which says how to install torch when it is missing.
"""

from __future__ import annotations

import inspect

import torch

from symopt.export.layout import defaults as hyperparameter_defaults, factor, stored_shape
from symopt.export.torch_array import as_tensor, xp
from symopt.export.torch_source import DTYPES as DTYPE_NAMES, check_torch_forms
from symopt.programs.checker import check, state_kinds
from symopt.programs.execute import bind, run
from symopt.programs.spaces import TreeSpace
from symopt.programs.program import Program

__all__ = ["DTYPES", "ProgramOptimizer", "to_torch"]

DTYPES = tuple(getattr(torch, name) for name in DTYPE_NAMES)
"""The parameter dtypes an exported optimizer takes; its state keeps each parameter's dtype."""


def check_torch(program: Program) -> dict:
    """Check that a program can be a torch optimizer; return its hyperparameters' defaults (None: as written)."""
    if not isinstance(program, Program):
        raise TypeError(f"to_torch() needs a symopt.Program, got {type(program).__name__}; "
                        f"use symopt.parse(text) to make one")
    check(program)
    defaults = hyperparameter_defaults(program)
    check_torch_forms(program, defaults)
    return defaults


class ProgramOptimizer(torch.optim.Optimizer):
    """The base of the classes :func:`to_torch` makes: ``program`` and its ``hyperparameters`` are theirs."""

    program: Program
    hyperparameters: dict
    held: dict  # what each state slot holds (state_kinds): a factored one is stored as a row or a column

    def __init__(self, params, lr=1e-3, **hyperparameters):
        unknown = sorted(set(hyperparameters) - set(self.hyperparameters))
        if unknown:
            known = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items()) or "none"
            raise TypeError(f"{type(self).__name__}() got unknown hyperparameter(s) {', '.join(map(repr, unknown))}; "
                            f"its hyperparameters (the program's constants) are: {known}")
        if not isinstance(lr, torch.Tensor) and lr < 0:
            raise ValueError(f"invalid learning rate: {lr}")
        super().__init__(params, {"lr": lr, **self.hyperparameters, **hyperparameters})

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = len(self.param_groups) - 1
        for i, p in enumerate(self.param_groups[-1]["params"]):
            if p.dtype not in DTYPES:
                del self.param_groups[-1]
                raise TypeError(f"{type(self).__name__}: parameter {i} of group {group} is {p.dtype}; it takes "
                                f"parameters of dtype {', '.join(map(str, DTYPES))}")

    @torch.no_grad()
    def step(self, closure=None):
        """One step of every parameter group; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if p.grad.layout != torch.strided:
                    raise RuntimeError(f"{type(self).__name__}: a parameter of group {index} has a sparse gradient "
                                       f"({p.grad.layout}); a symopt program needs dense gradients (use "
                                       f"torch.optim.SparseAdam for sparse ones, or nn.Embedding(..., sparse=False))")
            if params:
                self._step_group(group, params)
        return loss

    def _step_group(self, group: dict, params: list) -> None:
        program, slots, held = self.program, self.program.state_args, self.held
        states = [self.state[p] for p in params]
        for p, s in zip(params, states):
            if not s:  # a parameter's first step: its slots start at zero
                s["step"] = torch.tensor(0.0)
                s.update({slot: torch.zeros(stored_shape(tuple(p.shape), held[slot]), dtype=p.dtype, device=p.device)
                          for slot in slots})
        count = max(float(s["step"]) for s in states) + 1  # the group's step count, t (1 at the first step)
        full = {slot: [torch.broadcast_to(s[slot], p.shape) for s, p in zip(states, params)] for slot in slots}
        lr = group["lr"]
        inputs = bind(program, full, weight=list(params), grad=[p.grad for p in params], lr=lr,
                      step=torch.tensor(count, dtype=torch.float32))
        overrides = {k: group[k] for k in self.hyperparameters if group[k] is not None}
        space = TreeSpace(xp)
        direction, *new_slots = run(program, space, inputs, overrides)
        if not program.has_lr:
            direction = space.map(lambda u: u * lr, direction)
        updates = _as_leaves(direction, params)
        new_state = [[factor(x, held[slot]).clone() for x in _as_leaves(v, params)]
                     for slot, v in zip(slots, new_slots)]
        for p, u in zip(params, updates):
            p.sub_(u)
        for i, s in enumerate(states):
            s["step"] = torch.tensor(count)
            s.update({slot: values[i] for slot, values in zip(slots, new_state)})


def _as_leaves(value, like: list) -> list:
    """A program value as a new tensor per parameter of ``like``, with its shape, dtype and device."""
    if not isinstance(value, list):
        value = [value] * len(like)
    return [torch.empty_like(ref).copy_(as_tensor(v)) for v, ref in zip(value, like)]


def to_torch(program: Program, name: str | None = None) -> type[ProgramOptimizer]:
    """The program as a ``torch.optim.Optimizer`` subclass (see :func:`symopt.to_torch`)."""
    defaults = check_torch(program)
    name = name or "".join(part[:1].upper() + part[1:] for part in program.name.split("_") if part)
    doc = (f"The {program.name!r} update rule as a torch.optim.Optimizer (symopt.to_torch).\n\n"
           f"new parameters = {'w - update' if program.has_lr else 'w - lr * update'}, from the program:\n\n"
           f"{program}")
    cls = type(name, (ProgramOptimizer,), {"program": program, "hyperparameters": defaults,
                                           "held": state_kinds(program), "__doc__": doc, "__module__": __name__})
    kw = inspect.Parameter.KEYWORD_ONLY
    cls.__signature__ = inspect.Signature(
        [inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD),
         inspect.Parameter("lr", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=1e-3),
         *(inspect.Parameter(k, kw, default=v) for k, v in defaults.items())])
    return cls
