"""Programs as mathematics: SymPy expressions (:func:`to_sympy`) and LaTeX (:func:`latex`)."""

from symopt.symbolic.sympy_form import SymbolicForm, latex, latex_name, numpy_namespace, to_sympy

__all__ = ["SymbolicForm", "latex", "latex_name", "numpy_namespace", "to_sympy"]
