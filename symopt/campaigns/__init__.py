"""Campaigns at scale: distributed evaluation on Ray.

* :mod:`~symopt.campaigns.ray_pool`: :func:`connect` (start or join Ray, token auth kept on)
  and :class:`EvaluatorPool` (evaluator actors, one per core, steady-state dispatch,
  failed workers replaced, each candidate delivered once);
* :mod:`~symopt.campaigns.bench_scale`: ``symopt bench scale`` (evaluations/s, 1 vs N workers);
* :mod:`~symopt.campaigns.inspect_run`, :mod:`~symopt.campaigns.export_run`, :mod:`~symopt.campaigns.compare`:
  ``symopt inspect``, ``symopt export`` and ``symopt compare`` on a run directory's hall of fame.

Importing this package does not import Ray; the pool does when it is used.
"""

from symopt.campaigns.ray_pool import (POOL_DEFAULT, Evaluation, EvaluatorPool, PoolStats, RunSummary, connect,
                                       describe, disconnect, PoolStage, ship_runtime_env)

__all__ = ["POOL_DEFAULT", "Evaluation", "EvaluatorPool", "PoolStage", "PoolStats", "RunSummary", "connect", "describe",
           "disconnect", "ship_runtime_env"]
