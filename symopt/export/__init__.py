"""Export: programs as optax optimizers and as standalone Python modules."""

from symopt.export.optax_export import optimizer_factory, to_optax
from symopt.export.source import export_source

__all__ = ["export_source", "optimizer_factory", "to_optax"]
