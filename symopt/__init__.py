"""symopt: discover optimizers by evolving symbolic update rules.

Programs (:func:`parse`, :mod:`baselines`) are checked, turned into math
(:func:`to_sympy`, :func:`latex`) and exported as optax optimizers
(:func:`to_optax`, :func:`optimizer_factory`, :func:`export_source`) and as
``torch.optim`` optimizers (:func:`to_torch`, with PyTorch installed);
:func:`evaluate` scores them on proxy tasks with a compile-once interpreter,
:func:`search` evolves new ones, :func:`simplify` makes them readable and
:func:`derive` shortens them by steps checked by training.
"""

from symopt.evaluation import Result, evaluate
from symopt.export import export_source, optimizer_factory, to_optax, to_torch
from symopt.programs import Program, ProgramError, baselines, parse
from symopt.campaign import search
from symopt.tools.derive import derive
from symopt.symbolic import latex, to_sympy
from symopt.symbolic.simplify import simplify

__all__ = ["Program", "ProgramError", "Result", "baselines", "derive", "evaluate", "export_source", "latex",
           "optimizer_factory", "parse", "search", "simplify", "to_optax", "to_sympy", "to_torch"]
