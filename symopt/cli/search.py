"""``symopt search CONFIG``: run a search campaign and print its hall of fame.

By default the candidates train on a Ray evaluator pool: a local Ray instance
with one actor per core (``--workers N`` for N), or the cluster at ``--address``
(or ``RAY_ADDRESS``), where the project is shipped with a runtime_env. The search
is steady-state (:mod:`symopt.evolve.steady`): a child is proposed whenever an
actor is free. ``--serial`` trains in this process instead (no Ray; what tests and
small debugging runs want). ``--resume`` continues the run logged in
``--run-dir`` (replay, see :mod:`symopt.storage.run_dir`), on any backend. Ray runs
with token authentication or not at all (:mod:`symopt.distributed.cluster`):
``--insecure`` allows it without, and says so on stderr. Progress as it goes
(:mod:`symopt.cli.progress`): on a terminal one line redrawn in place, otherwise a
plain line at each tenth of the budget, and each funnel check; ``--quiet`` prints
only the summary.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

from symopt.cli.progress import Progress
from symopt.distributed import EvaluatorPool
from symopt.distributed.cluster import (INSECURE_HELP, ClusterAuthError, auth_mode, connect, open_cluster_warning,
                                        task_runtime_env)
from symopt.campaign.campaign import search
from symopt.storage.durable import LOCK_NAME, Busy, DirLock, WriteError
from symopt.config.space import check_tasks, load, stage_name, task_names

def _fail(message: str) -> int:
    print(f"symopt search: {message}", file=sys.stderr)
    return 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="search configuration: a TOML file or a name in search_spaces/ (hero, quick)")
    parser.add_argument("--budget", type=int, default=None, help="candidates to train (default: the config's)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the search (default: the config's)")
    parser.add_argument("--run-dir", default=None, help="where to write evaluations.jsonl and hall_of_fame.json "
                                                        "(default: runs/NAME)")
    parser.add_argument("--resume", action="store_true", help="continue the run logged in --run-dir: logged "
                                                              "candidates take their logged fitness, the rest are "
                                                              "trained")
    parser.add_argument("--workers", type=int, default=None, help="Ray evaluator actors (default: one per free CPU)")
    parser.add_argument("--address", default=None, help="join this Ray cluster (default: RAY_ADDRESS, else a local "
                                                        "Ray instance)")
    parser.add_argument("--serial", action="store_true", help="train in this process, without Ray")
    parser.add_argument("--insecure", action="store_true", help=INSECURE_HELP)
    parser.add_argument("--quiet", action="store_true", help="print no progress, only the summary at the end")


def main(args: argparse.Namespace) -> int:
    """Run the campaign of ``args.config``; print the summary; the run directory holds the rest."""
    workers = getattr(args, "workers", None)
    address = getattr(args, "address", None) or os.environ.get("RAY_ADDRESS") or None
    serial = bool(getattr(args, "serial", False))
    insecure = bool(getattr(args, "insecure", False))
    if workers is not None and workers < 1:
        return _fail(f"--workers must be at least 1, got {workers}")
    if serial and (workers is not None or getattr(args, "address", None) or insecure):
        return _fail("--serial trains in this process; leave out --workers, --address and --insecure "
                     "(or drop --serial)")

    try:  # the configuration and the overrides are checked before anything is created
        config = load(args.config).replace_campaign(  # parses TOML only: no JAX yet
            **{k: v for k in ("budget", "seed") if (v := getattr(args, k, None)) is not None})
    except ValueError as e:
        return _fail(str(e))
    if not serial:  # token authentication or no Ray: refused before anything is created
        try:
            auth_mode(address, insecure)
        except ClusterAuthError as e:
            return _fail(str(e))
    run_dir = pathlib.Path(getattr(args, "run_dir", None) or pathlib.Path("runs", config.name))
    fresh = not run_dir.exists()
    try:
        # one writer: the lock is taken before Ray starts, and held (re-entered by the campaign) to the end
        with DirLock(run_dir):
            code = 1  # until _run returns: an exception leaves it so
            try:
                code = _run(args, config, run_dir, serial, workers, address, insecure)
                return code
            finally:
                if code:
                    _forget(run_dir, fresh)
    except (Busy, WriteError, FileExistsError, ValueError) as e:
        return _fail(str(e))


def _forget(run_dir: pathlib.Path, fresh: bool) -> None:
    """A run directory this command created and then wrote nothing into (refused before the first training):
    removed, so that a refusal leaves nothing behind."""
    if fresh and {p.name for p in run_dir.iterdir()} <= {LOCK_NAME}:
        try:
            (run_dir / LOCK_NAME).unlink(missing_ok=True)
            run_dir.rmdir()
        except OSError:
            pass  # another process has started writing there: its directory now


def _run(args: argparse.Namespace, config, run_dir: pathlib.Path, serial: bool, workers, address,
         insecure: bool) -> int:
    """The campaign on its backend, with the run directory locked; prints the summary."""
    if not serial:  # before any JAX work in this process: starting Ray forks it
        try:  # num_cpus: a local instance only
            cluster = connect(address, num_cpus=workers, insecure=insecure)
        except ClusterAuthError as e:
            return _fail(str(e))
        warning = open_cluster_warning(cluster)
        if warning:
            print(f"symopt search: {warning}", file=sys.stderr)

    check_tasks(config)  # the user's own tasks train: after Ray starts (this is JAX), before any worker does
    pool, backend, alive = None, "serial", None
    if not serial:
        pool = EvaluatorPool(workers=workers, actor_options={"runtime_env": task_runtime_env(task_names(config))})
        backend = pool.backend
        alive = lambda: len(pool.worker_info())  # noqa: E731
    progress = None
    if not getattr(args, "quiet", False):
        c = config.campaign
        progress = Progress(c.budget, [stage_name(c, i) for i in range(len(c.stages))], workers=alive)
    try:
        campaign = search(config, backend=backend, run_dir=run_dir, resume=bool(getattr(args, "resume", False)),
                          progress=progress, on_check=progress.check if progress else None)
    finally:
        if progress:
            progress.close()
        if pool is not None:
            pool.shutdown()
    print(campaign.summary())
    if pool is not None:
        s = pool.stats
        print(f"ray: {pool.workers} worker{'s' if pool.workers != 1 else ''}, {s.worker_deaths} lost and replaced, "
              f"{s.resubmitted} candidates re-sent")
    print(f"\nwrote {run_dir}/: evaluations.jsonl, lineage.jsonl, populations/, hall_of_fame.json "
          f"(symopt inspect {run_dir}; symopt report {run_dir})")
    return 0
