"""Campaigns at scale: distributed evaluation on Ray.

* :mod:`~symopt.campaigns.cluster`: :func:`connect` (start or join Ray, with token
  authentication or not at all);
* :mod:`~symopt.campaigns.ray_pool`: :class:`EvaluatorPool` (evaluator actors, one per core
  (:mod:`~symopt.campaigns.cores`), steady-state dispatch, failed workers replaced, each
  candidate delivered once);
* :mod:`~symopt.campaigns.bench_scale`: ``symopt bench scale`` (evaluations/s, 1 vs N workers);
* :mod:`~symopt.campaigns.inspect_run`, :mod:`~symopt.campaigns.export_run`, :mod:`~symopt.campaigns.compare`:
  ``symopt inspect``, ``symopt export`` and ``symopt compare`` on a run directory's hall of fame.

Importing this package does not import Ray; the pool does when it is used.
"""

from symopt.campaigns.cluster import ClusterAuthError, connect, describe, disconnect, ship_runtime_env
from symopt.campaigns.ray_pool import POOL_DEFAULT, Evaluation, EvaluatorPool, PoolStage, PoolStats, RunSummary

__all__ = ["POOL_DEFAULT", "ClusterAuthError", "Evaluation", "EvaluatorPool", "PoolStage", "PoolStats", "RunSummary",
           "connect", "describe", "disconnect", "ship_runtime_env"]
