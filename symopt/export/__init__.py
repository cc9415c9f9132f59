"""Export: programs as optax optimizers and as standalone Python modules."""

from symopt.export.optax_export import to_optax

__all__ = ["to_optax"]
