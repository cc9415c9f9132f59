"""Programs as mathematics: SymPy expressions (:func:`to_sympy`), LaTeX (:func:`latex`), and the numeric
check that two programs compute the same (:func:`equivalent`, :func:`mismatch`)."""

from symopt.symbolic.equivalence import Mismatch, equivalent, mismatch
from symopt.symbolic.sympy_form import SymbolicForm, latex, latex_name, numpy_namespace, to_sympy

__all__ = ["Mismatch", "SymbolicForm", "equivalent", "latex", "latex_name", "mismatch", "numpy_namespace",
           "to_sympy"]
