"""Proxy tasks: small JAX training problems on which symopt scores candidate optimizers.

    >>> import proxy_tasks
    >>> task = proxy_tasks.get("mlp_digits")
    >>> losses, eval_loss = proxy_tasks.train(task, proxy_tasks.adamw(task), seed=0)

TABLE
"""

from proxy_tasks.registry import get, names
from proxy_tasks.task import Task, adamw, train, training_run

__all__ = ["Task", "adamw", "get", "names", "train", "training_run"]
