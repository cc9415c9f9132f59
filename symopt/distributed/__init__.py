"""Distributed evaluation on Ray: the layer between symopt.search and the command line.

* :mod:`~symopt.distributed.cluster`: :func:`connect` (start or join Ray, with token
  authentication or not at all; the code shipped to a cluster);
* :mod:`~symopt.distributed.cores`: pinning an actor to one core;
* :mod:`~symopt.distributed.worker`: the evaluator actor (program text in, plain data out);
* :mod:`~symopt.distributed.pool`: :class:`EvaluatorPool` (steady-state dispatch, failed
  workers replaced, each candidate delivered once), its bookkeeping in
  :mod:`~symopt.distributed.jobs` and its results in :mod:`~symopt.distributed.results`;
* :mod:`~symopt.distributed.stage`: :class:`PoolStage`, a campaign stage on the pool.

Importing this package does not import Ray; the pool does when it is used.
"""

from symopt.distributed.cluster import ClusterAuthError, connect, describe, disconnect, ship_runtime_env
from symopt.distributed.jobs import POOL_DEFAULT, PoolStats
from symopt.distributed.pool import EvaluatorPool
from symopt.distributed.results import Evaluation, RunSummary
from symopt.distributed.stage import PoolStage

__all__ = ["POOL_DEFAULT", "ClusterAuthError", "Evaluation", "EvaluatorPool", "PoolStage", "PoolStats", "RunSummary",
           "connect", "describe", "disconnect", "ship_runtime_env"]
