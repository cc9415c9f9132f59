"""Export: programs as optax optimizers, as torch optimizers and as standalone Python modules."""

from symopt.export.optax_export import optimizer_factory, to_optax
from symopt.export.source import export_source

__all__ = ["export_source", "optimizer_factory", "to_optax", "to_torch"]


def to_torch(program, name: str | None = None):
    """The program as a ``torch.optim.Optimizer`` subclass, used as torch's own optimizers are.

    ``Cls = to_torch(program)``; ``opt = Cls(model.parameters(), lr=1e-3, **hyperparameters)`` takes
    params or param groups, the learning rate (the program's ``lr``, or a factor of its update when it
    takes none) and the program's constants (``b1 = 0.9``) as keyword arguments with the found values
    as defaults; ``opt.step(closure=None)`` updates the parameters in place. It computes what
    ``symopt.to_optax(program, lr, **hyperparameters)`` computes, per parameter group: tree-wide
    functions (``global_norm``, ``dot``, ...) are over all of a group's parameters that have a
    gradient, and ``t`` is the group's step count. float32, bfloat16, float16 and float64 parameters;
    the state keeps each parameter's dtype. The matrix functions see a tensor as JAX does, its last axis
    against the others: torch's ``nn.Linear`` weight is ``[out, in]``, so there ``rows`` counts outputs
    and ``cols`` inputs (the transpose of a JAX kernel). ``name`` is the class's name (default: the program's
    name in CamelCase). ``symopt.export_source(program, name, framework="torch")`` writes the same
    optimizer as a standalone module.

    Needs PyTorch (``pip install 'symopt[torch]'``); the rest of symopt never imports it.

    Raises:
        ModuleNotFoundError: torch is not installed.
        TypeError: ``program`` is not a :class:`~symopt.Program`.
        ValueError: the program calls a function with no torch form, or names a hyperparameter
            ``params`` or ``lr``.
    """
    try:
        from symopt.export import torch_optimizer
    except ModuleNotFoundError as e:
        if e.name != "torch":
            raise
        raise ModuleNotFoundError("symopt.to_torch needs PyTorch: pip install 'symopt[torch]' (or torch itself; "
                                  "CPU only: pip install torch --index-url https://download.pytorch.org/whl/cpu)",
                                  name="torch") from e
    return torch_optimizer.to_torch(program, name)
