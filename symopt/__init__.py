"""symopt: discover optimizers by evolving symbolic update rules.

Programs (:func:`parse`) are checked, simplified to math (:func:`to_sympy`,
:func:`latex`) and exported as optax optimizers (:func:`to_optax`,
:func:`export_source`).
"""

from symopt.programs import Program, ProgramError, parse

__all__ = ["Program", "ProgramError", "parse"]
