"""Tasks of the user's own, named by import path ``"package.module:attr"`` wherever a registered name is accepted.

``attr`` is a :class:`~proxy_tasks.task.Task` (or an object with its fields: init, loss, batch, eval_loss,
steps, learning_rate), or a task factory: a function of no arguments marked by its return annotation
``-> Task``. The module is imported with the current directory on ``sys.path`` (as ``python -m`` would):
naming a module runs its import, which is the point. Nothing else it holds is called: ``"os:abort"`` is
refused when the configuration is read (the annotation is read as written, never evaluated). The task is
renamed to its import path, so results, gates and logs name it exactly as the configuration does.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import os
import pathlib
import sys

import jax
import jax.numpy as jnp

from proxy_tasks.task import Task, adamw, train

FIELDS = ("init", "loss", "batch", "eval_loss", "steps", "learning_rate")
"""What an object needs to serve as a task (``weight_decay`` and the rest have defaults)."""
CHECK_STEPS = 100
"""Most AdamW steps of the check that a task trains at its reference learning rate."""


def is_import_path(name: str) -> bool:
    """Whether ``name`` names a task by import path (``"module:attr"``) rather than by registered name."""
    return ":" in name


def _split(path: str) -> tuple[str, str]:
    module, _, attr = path.partition(":")
    if not module or not attr or ":" in attr:
        raise ValueError(f"task {path!r}: not an import path; write \"package.module:attr\"")
    return module, attr


def _import(module: str, path: str):
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)  # after everything else, as a fallback: a module next to the user
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or not (module == e.name or module.startswith(f"{e.name}.")):  # a module it imports
            raise ValueError(f"task {path!r}: importing {module!r} failed: {e}") from None
        raise ValueError(f"task {path!r}: no module named {e.name!r}; run from the directory that holds it, "
                         "add that directory to PYTHONPATH, or install the package") from None
    except Exception as e:  # the user's module raised while importing
        raise ValueError(f"task {path!r}: importing {module!r} failed: {type(e).__name__}: {e}") from None


def find(path: str):
    """The task or task factory that ``"module:attr"`` names (the module imported, the attribute read, nothing
    called). Raises ValueError when it is neither."""
    module, attr = _split(path)
    obj = _import(module, path)
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(obj) if not n.startswith("_"))[:20]
            raise ValueError(f"task {path!r}: {module!r} has no attribute {attr!r}; it has: {', '.join(public)}")
        obj = getattr(obj, part)
    if not (_is_task(obj) or is_factory(obj)):
        raise ValueError(f"task {path!r}: {type(obj).__name__} is not a task (no {', '.join(_missing(obj))}); give a "
                         f"proxy_tasks.Task, or a function of no arguments marked as a task factory by its return "
                         f"annotation (def {attr.rpartition('.')[2]}() -> Task: ...); symopt calls nothing else")
    return obj


def is_factory(obj) -> bool:
    """Whether ``obj`` is a task factory: a Python function whose return annotation is Task (the class, or the
    name written as a string under ``from __future__ import annotations``, which is read, not evaluated)."""
    if not inspect.isfunction(obj):
        return False
    mark = obj.__annotations__.get("return")
    return mark is Task or (isinstance(mark, str) and mark.rpartition(".")[2] == "Task")


def _missing(obj) -> list[str]:
    return [f for f in FIELDS if not hasattr(obj, f)]


def load(path: str) -> Task:
    """The task ``"module:attr"`` names, as a Task renamed to ``path``. Raises ValueError naming what is wrong."""
    obj = find(path)
    if not _is_task(obj):  # a task factory (find checked)
        try:
            obj = obj()
        except Exception as e:
            raise ValueError(f"task {path!r}: calling {path.partition(':')[2]}() failed: "
                             f"{type(e).__name__}: {e}") from None
    if not _is_task(obj):
        raise ValueError(f"task {path!r}: {path.partition(':')[2]}() returned {type(obj).__name__}, not a task (no "
                         f"{', '.join(_missing(obj))}); return a proxy_tasks.Task")
    if not isinstance(obj, Task):
        values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(Task) if hasattr(obj, f.name)}
        obj = Task(**{"tag": "search", **values, "name": path})
    if obj.tag not in ("search", "validation"):
        obj = dataclasses.replace(obj, tag="search")
    return dataclasses.replace(obj, name=path)


def _is_task(obj) -> bool:
    return isinstance(obj, Task) or all(hasattr(obj, f) for f in FIELDS)


def problem(task: Task) -> str | None:
    """What keeps ``task`` from being trained, or None: a loss that is not a float scalar, or an AdamW
    run at the task's reference learning rate (up to CHECK_STEPS steps, seed 0) whose eval loss ends
    not finite or not below where it started. The run is real, one compile and a few steps."""
    key = jax.random.PRNGKey(0)
    try:
        params = jax.eval_shape(task.init, key)
        loss = jax.eval_shape(task.loss, params, jax.eval_shape(task.batch, key, jnp.int32(0)))
        eval_loss = jax.eval_shape(task.eval_loss, params)
    except Exception as e:
        return f"init, batch and loss do not trace with JAX: {type(e).__name__}: {(str(e) or '-').splitlines()[0]}"
    for what, out in (("loss", loss), ("eval_loss", eval_loss)):
        if getattr(out, "shape", None) != () or not jnp.issubdtype(out.dtype, jnp.floating):
            shape = getattr(out, "shape", type(out).__name__)
            return f"{what} returns {shape} {getattr(out, 'dtype', '')}, not a float scalar; return a mean " \
                   "(jnp.mean(...))"
    steps = max(1, min(int(task.steps), CHECK_STEPS))
    try:
        start = float(task.eval_loss(task.init(jax.random.split(key)[0])))
        _, end = train(task, adamw(task, steps=steps), seed=0, steps=steps)
    except Exception as e:
        return f"AdamW cannot train it: {type(e).__name__}: {(str(e) or '-').splitlines()[0]}"
    if not (math.isfinite(start) and math.isfinite(end) and end < start):
        return (f"AdamW at the reference learning_rate {task.learning_rate:g} does not train it: eval loss "
                f"{start:.4g} at the start, {end:.4g} after {steps} steps; lower learning_rate or fix the loss")
    return None


def ship_path(path: str) -> str:
    """The directory (a package) or file (a module) of the top-level package of task ``path``, to ship to
    Ray workers (a runtime_env's ``py_modules``)."""
    top = _import(_split(path)[0].split(".")[0], path)
    if hasattr(top, "__path__"):
        return str(pathlib.Path(next(iter(top.__path__))))
    return str(pathlib.Path(top.__file__))
