"""Baselines built directly from optax rather than written as programs (none is registered since Adafactor
became a program; :class:`OptaxBaseline` is the type ``to_optax`` and ``compare`` accept for them)."""

from __future__ import annotations

import dataclasses
import textwrap
import types
from typing import Any, Callable, Mapping

@dataclasses.dataclass(frozen=True)
class OptaxBaseline:
    """A baseline the language cannot express, built directly from optax.

    ``build(learning_rate=..., **hyperparameters)`` makes the optimizer;
    ``defaults`` are its hyperparameters and their default values.
    ``symopt.export.to_optax(baseline, learning_rate, **overrides)`` delegates to
    :meth:`to_optax`. For ``optax.inject_hyperparams`` use ``build`` directly.
    """

    name: str
    doc: str = dataclasses.field(repr=False)
    build: Callable[..., Any] = dataclasses.field(repr=False, compare=False)
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)

    kind = "optax"
    is_program = False

    def __post_init__(self):
        object.__setattr__(self, "defaults", types.MappingProxyType(dict(self.defaults)))

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters that :meth:`to_optax` accepts as overrides, with defaults."""
        return dict(self.defaults)

    def to_optax(self, learning_rate: Any = 1e-3, **overrides: Any):
        """The optax optimizer, with ``overrides`` replacing default hyperparameters."""
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            listing = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items()) or "none"
            raise ValueError(f"baseline {self.name!r} has no hyperparameter {', '.join(map(repr, unknown))}; "
                             f"its hyperparameters are: {listing}")
        return self.build(learning_rate=learning_rate, **{**self.defaults, **overrides})

    def __str__(self) -> str:
        doc = textwrap.fill(self.doc, 88, initial_indent="# ", subsequent_indent="# ")
        module = getattr(self.build, "__module__", "") or ""
        function = getattr(self.build, "__name__", self.name)
        call = f"optax.{function}" if module.startswith("optax") else f"{module}.{function}".lstrip(".")
        args = ["learning_rate"] + [f"{k}={_show(v)}" for k, v in self.defaults.items()]
        return (f"# {self.name}: optax-level baseline, not a program\n{doc}\n"
                + textwrap.fill(f"{call}({', '.join(args)})", 88, subsequent_indent="    ") + "\n")


def _show(value: Any) -> str:
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}".replace("jax.numpy", "jnp")
    return repr(value)

