"""``symopt search CONFIG``: run a search campaign and print its hall of fame.

Serial (in this process) by default; ``--workers N`` and/or ``--address A`` (or the
``RAY_ADDRESS`` environment variable) train the candidates on a Ray evaluator pool,
with the campaign's batch raised to at least twice the workers so that every worker
stays busy. ``--resume`` continues the run logged in ``--run-dir`` (replay, see
:mod:`symopt.search.campaign`). On a terminal a one-line progress display is
refreshed in place; otherwise nothing is printed until the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time


def _progress_line(workers):
    """A ``progress(state, replayed)`` callback that redraws one line on stdout (a terminal only)."""
    t0 = time.monotonic()

    def show(state, replayed: int) -> None:
        s = state.stats
        trained = s.evaluated - replayed  # trained by this process (the rest replayed from the log)
        rate = trained / max(time.monotonic() - t0, 1e-9)
        alive = workers() if workers else "serial"
        line = (f"trained {s.evaluated}" + (f" ({replayed} replayed)" if replayed else "")
                + f"  {rate:.1f} eval/s  best {state.best.fitness:+.3f}  cache hits {s.cache_hit_rate:.0%}"
                + f"  workers {alive}")
        sys.stdout.write("\r" + line + "\x1b[K")
        sys.stdout.flush()

    return show


def main_search(args: argparse.Namespace) -> int:
    """Run the campaign of ``args.config``; print the summary; write the hall of fame next to the log."""
    workers = getattr(args, "workers", None)
    address = getattr(args, "address", None) or os.environ.get("RAY_ADDRESS") or None
    use_ray = workers is not None or address is not None
    if workers is not None and workers < 1:
        print(f"symopt search: --workers must be at least 1, got {workers}", file=sys.stderr)
        return 1
    if use_ray:  # before any JAX work in this process: starting Ray forks it
        from symopt.campaigns import connect

        connect(address)

    from symopt.search.campaign import search
    from symopt.search.space import load

    try:
        config = load(args.config)
    except ValueError as e:
        print(f"symopt search: {e}", file=sys.stderr)
        return 1
    run_dir = pathlib.Path(getattr(args, "run_dir", None) or pathlib.Path("runs", config.name))
    pool, backend, alive = None, "serial", None
    if use_ray:
        from symopt.campaigns import EvaluatorPool

        pool = EvaluatorPool(workers=workers)
        backend = pool.backend
        alive = lambda: len(pool.worker_info())  # noqa: E731
        config = config.replace_campaign(batch=max(config.campaign.batch, 2 * pool.workers))
    progress = _progress_line(alive) if sys.stdout.isatty() else None
    try:
        campaign = search(config, budget=getattr(args, "budget", None), seed=getattr(args, "seed", None),
                          backend=backend, run_dir=run_dir, resume=bool(getattr(args, "resume", False)),
                          progress=progress)
    except (FileExistsError, ValueError) as e:
        if progress:
            print()
        print(f"symopt search: {e}", file=sys.stderr)
        return 1
    finally:
        if pool is not None:
            pool.shutdown()
    if progress:
        print()
    (run_dir / "hall_of_fame.json").write_text(json.dumps(
        {"reference": campaign.reference.as_json(), "hall_of_fame": [e.as_json() for e in campaign.hall_of_fame],
         "stats": campaign.stats.as_dict(), "seconds": campaign.seconds, "replayed": campaign.replayed}, indent=2))
    print(campaign.summary())
    print(f"\nwrote {run_dir / 'evaluations.jsonl'} and {run_dir / 'hall_of_fame.json'}")
    return 0
