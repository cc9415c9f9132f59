"""Baselines the language cannot express (adafactor's factored moments), built directly from optax."""

from __future__ import annotations

import dataclasses
import inspect
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


def adafactor() -> OptaxBaseline:
    """optax.adafactor as a baseline, with its signature's defaults as hyperparameters."""
    import optax

    params = inspect.signature(optax.adafactor).parameters
    defaults = {k: p.default for k, p in params.items() if k != "learning_rate"}
    return OptaxBaseline(
        name="adafactor",
        doc=("Adafactor (Shazeer & Stern 2018) as optax.adafactor: a matrix whose two largest "
             "dimensions are both >= min_dim_size_to_factor (128) keeps factored second moments "
             "(row and column means of g^2), which the language cannot express; smaller tensors "
             "keep full second moments. Update clipped to block RMS 1, scaled by the parameter "
             "RMS; learning_rate=None applies no learning rate, as in optax."),
        build=optax.adafactor,
        defaults=defaults,
    )

