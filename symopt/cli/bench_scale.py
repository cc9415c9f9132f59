"""``symopt bench scale``: evaluations per second with 1 worker and with N, on the same candidates.

    symopt bench scale --workers 2 --candidates 96 --task mlp_digits

Starts (or joins, ``--address`` / ``RAY_ADDRESS``) Ray first, before any JAX in
this process, then one :class:`~symopt.distributed.EvaluatorPool` of N actors,
started and warmed (every actor evaluates every candidate once, so every
program-size bucket is compiled and the AdamW reference cached). Then ``repeats``
pairs of timed rounds, interleaved: the pool restricted to 1 actor
(``pool.active = 1``), then all N; in each round all K candidates are submitted at
once and drained as they finish (steady-state dispatch). Same actors, same warm
caches, same candidates; interleaving makes a change in the machine's load hit
both sizes alike. Reported per size: best and median throughput; the speed-up,
the efficiency (speed-up / N; target >= 0.9), the mean training time per candidate
on the workers (slower workers vs dispatch overhead), and how many cores other
processes kept busy just before and after (from /proc/stat): on a shared machine
the N-worker figure is only as good as the free cores.

The candidates are the baseline programs with their constants in (0, 1) scaled by
slightly different factors: K distinct programs of realistic sizes, the same K
for both measurements.

**Campaign mode** (``--campaign CONFIG``): the same comparison on a real search.

    symopt bench scale --campaign quick --budget 1500 --workers 2 [--repeats R] [--seed S] [--json]

Only the search stage is timed: the configuration is cut to its first stage, no
validation tasks, a hall of fame of 1 (:func:`first_stage`), so the funnel adds
nothing. On one pool of N actors, first an untimed warm-up campaign with another
seed on all N, then :meth:`~symopt.distributed.EvaluatorPool.warm` with one program
of each program-size bucket that the warm-up trained: compilation is excluded
from the timings. Then ``repeats`` pairs of campaigns, interleaved, with
``pool.active = 1`` and ``= N``; same configuration, seed and budget. Each is
timed from its first to its last accepted training (the ``progress`` callback of
:func:`symopt.campaign.search`): trainings/s = trainings accepted in between / the
seconds in between. Steady-state asynchronous acceptance makes the N-worker
search a different (equally valid) trajectory from the 1-worker one, so its cache
hits (children scored without training) differ too; both are reported. Also per
size: the mean training time per candidate on the workers, and how busy the
active workers were (worker time per call x trainings / (N x seconds)): what is
missing is dispatch and the driver's own work between results; and the driver's
CPU time per training (``time.process_time``, all its threads: mutation, the
behaviour fingerprints, Ray's client), which on a machine with one core per worker
is taken from the workers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from typing import Any

from symopt.distributed.cluster import INSECURE_HELP, ClusterAuthError, connect, describe, open_cluster_warning
from symopt.distributed.pool import EvaluatorPool
from symopt.programs import baselines
from symopt.programs.liveness import eliminate_dead_code
from symopt.programs.program import Assign, Call, Const
from symopt.campaign.campaign import search
from symopt.config.space import load

DEFAULT_TASK = "mlp_digits"
DEFAULT_CANDIDATES = 96
TARGET_EFFICIENCY = 0.9
WARMUP_BUDGET = 400
"""Most trainings of the warm-up campaign (its job is compiling, which a few hundred candidates cover)."""


def _scaling(out: dict, rate: str, n: int) -> None:
    """Add the 1-vs-N summary to ``out``: both rates, speed-up and efficiency (best and median), the machine."""
    one, many = out["workers_1"], out[f"workers_{n}"]
    out.update({f"{rate}_1": one[rate], f"{rate}_n": many[rate]},
               speedup=many[rate] / one[rate], speedup_median=many[f"{rate}_median"] / one[f"{rate}_median"],
               target_efficiency=TARGET_EFFICIENCY, load_average_after=os.getloadavg()[0],
               cpus=len(os.sched_getaffinity(0)))
    out["efficiency"] = out["speedup"] / n
    out["efficiency_median"] = out["speedup_median"] / n


def candidates(k: int) -> list[str]:
    """K distinct program texts: baselines with their constants in (0, 1) scaled by 1 - 0.002 j."""
    import dataclasses

    def scale(e, f):
        if isinstance(e, Const):
            return Const(e.value * f) if 0.0 < e.value < 1.0 else e
        if isinstance(e, Call):
            return Call(e.fn, tuple(scale(a, f) for a in e.args))
        return e

    names = [n for n in baselines.names() if baselines.is_program(n)]
    out: list[str] = []
    j = 0
    while len(out) < k:
        f = 1.0 - 0.002 * (j // len(names))
        p = baselines.get(names[j % len(names)])
        q = dataclasses.replace(p, body=tuple(Assign(s.target, scale(s.value, f)) for s in p.body),
                                returns=tuple(scale(e, f) for e in p.returns))
        out.append(str(q))
        j += 1
    return out


def _cpu_times() -> tuple[int, int, int]:
    """(busy at normal priority, busy niced, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
    return user + system + irq + softirq + steal, nice, user + nice + system + idle + iowait + irq + softirq + steal


def busy_cores(seconds: float = 1.0) -> dict | None:
    """Cores kept busy on this machine over the next ``seconds``: ``{"normal": x, "niced": y}``.

    Niced work (other jobs started with ``nice``) yields to the workers and hardly
    slows them; work at normal priority competes. None where /proc/stat is missing.
    """
    try:
        b0, n0, t0 = _cpu_times()
        time.sleep(seconds)
        b1, n1, t1 = _cpu_times()
    except OSError:
        return None
    scale = os.cpu_count() / max(1, t1 - t0)
    return {"normal": (b1 - b0) * scale, "niced": (n1 - n0) * scale}


def timed_round(pool, texts: list[str], tag) -> tuple[float, list[float]]:
    """All candidates submitted at once and drained as they finish: (seconds, training s of each)."""
    t0 = time.perf_counter()
    for i, text in enumerate(texts):
        pool.submit((tag, i), text)
    got = list(pool.results())
    elapsed = time.perf_counter() - t0
    bad = [ev for ev in got if not ev.ok]
    if bad:
        raise RuntimeError(f"{len(bad)} candidates failed; first:\n{bad[0].error}")
    return elapsed, [ev.seconds for ev in got]


def _connect(address: str | None, insecure: bool) -> dict:
    """Start or join Ray; the loud line on stderr when the cluster has no token authentication."""
    cluster = connect(address, insecure=insecure)
    warning = open_cluster_warning(cluster)
    if warning:
        print(f"symopt bench scale: {warning}", file=sys.stderr)
    return cluster


def run(workers: int | None = None, n_candidates: int = DEFAULT_CANDIDATES, task: str = DEFAULT_TASK,
        steps: int | None = None, seeds=(0,), repeats: int = 5, address: str | None = None,
        max_in_flight: int = 2, pin: bool = True, insecure: bool = False) -> dict:
    """Measure; returns the figures as a dict (see the module docstring)."""
    cluster = _connect(address, insecure)  # before anything computes with JAX here
    n = int(workers or cluster["free_cpus"] or 1)
    texts = candidates(n_candidates)
    out: dict = {"task": task, "steps": steps, "seeds": list(seeds), "candidates": len(texts), "workers": n,
                 "repeats": repeats, "max_in_flight": max_in_flight, "pin": pin, "cluster": describe(),
                 "load_average_before": os.getloadavg()[0]}
    sizes = sorted({1, n})
    rounds: dict[int, list[float]] = {k: [] for k in sizes}
    train: dict[int, list[float]] = {k: [] for k in sizes}
    with EvaluatorPool(task, seeds, steps, workers=n, max_in_flight=max_in_flight, pin=pin) as pool:
        t0 = time.perf_counter()
        out["workers_info"] = pool.wait_ready(timeout=300)
        out["start_s"] = time.perf_counter() - t0
        out["warm_s"] = pool.warm(texts)
        out["other_busy_cores_before"] = busy_cores(1.0)
        for r in range(repeats):  # interleaved, so a change in the machine's load hits both alike
            for k in sizes:
                pool.active = k
                elapsed, seconds = timed_round(pool, texts, (k, r))
                rounds[k].append(elapsed)
                train[k] += seconds
        out["other_busy_cores_after"] = busy_cores(1.0)
    for k in sizes:
        out[f"workers_{k}"] = {"evals_per_s": len(texts) / min(rounds[k]),
                               "evals_per_s_median": len(texts) / statistics.median(rounds[k]),
                               "rounds_s": rounds[k], "train_s_per_candidate": statistics.fmean(train[k])}
    _scaling(out, "evals_per_s", n)
    return out


def report(r: dict) -> str:
    """The figures as a few lines."""
    n = r["workers"]
    steps = r["steps"] if r["steps"] is not None else "default"
    lines = [
        f"task {r['task']} ({steps} steps, seeds {r['seeds']}), {r['candidates']} candidates per round, "
        f"{r['repeats']} rounds per size, interleaved; " + _machine_line(r),
    ]
    for k in sorted({1, n}):
        m = r[f"workers_{k}"]
        lines.append(f"  {k:3d} worker{'s' if k > 1 else ' '} {m['evals_per_s']:9.1f} evaluations/s best, "
                     f"{m['evals_per_s_median']:9.1f} median   ({m['train_s_per_candidate'] * 1e3:.1f} ms training "
                     f"per candidate)")
    lines.append(_speedup_line(r))
    return "\n".join(lines)


def _cores(x) -> str:
    return "?" if x is None else f"{x['normal']:.2f} (+{x['niced']:.2f} niced)"


def _machine_line(r: dict) -> str:
    return (f"{r['cluster']['cpus']:.0f} cluster CPUs, {r['cpus']} here; load {r['load_average_before']:.2f} -> "
            f"{r['load_average_after']:.2f}, other processes busy on {_cores(r['other_busy_cores_before'])} -> "
            f"{_cores(r['other_busy_cores_after'])} cores")


def _speedup_line(r: dict) -> str:
    return (f"  speed-up {r['speedup']:.2f} best / {r['speedup_median']:.2f} median; efficiency "
            f"{r['efficiency']:.2f} / {r['efficiency_median']:.2f} (target >= {r['target_efficiency']})")


# -- campaign mode ---------------------------------------------------------------------------------


def first_stage(config, budget: int | None = None, seed: int | None = None, steps: int | None = None):
    """The configuration cut to its search stage: first stage only, no validation, hall of fame 1.

    ``config`` as :func:`symopt.config.space.load` takes it; ``budget``, ``seed`` and
    ``steps`` (the stage's training steps) override it where given.
    """
    cfg = load(config)
    stage = cfg.campaign.stages[0]
    if steps is not None:
        stage = dataclasses.replace(stage, steps=int(steps))
    changes: dict[str, Any] = {"stages": (stage,), "validation": (), "hall_of_fame": 1}
    if budget is not None:
        changes["budget"] = int(budget)
    if seed is not None:
        changes["seed"] = int(seed)
    return cfg.replace_campaign(**changes)


def _finite_mean(xs) -> float | None:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.fmean(xs) if xs else None


def timed_search(pool, cfg, k: int) -> dict:
    """One campaign (``cfg``, already cut by :func:`first_stage`) on the first ``k`` actors of ``pool``; timed.

    Returns the trainings and seconds from the first to the last accepted training,
    the counts of the whole search, the slots the results came from, and the
    workers' time per candidate.
    """
    marks: list[tuple[float, int, float]] = []  # (time, trainings so far, driver CPU s) at each accepted training

    def progress(state, replayed) -> None:
        evaluated = state.stats.evaluated
        if not marks or evaluated > marks[-1][1]:  # the call after the loop repeats the last count
            marks.append((time.perf_counter(), evaluated, time.process_time()))

    pool.active = k
    try:
        t0 = time.perf_counter()
        campaign = search(cfg, backend=pool.backend, progress=progress)
        wall = time.perf_counter() - t0
    finally:
        pool.active = pool.workers
    if len(marks) < 2:
        raise RuntimeError(f"the search accepted {len(marks)} trainings after the start program; give a larger budget")
    (t_first, n_first, cpu_first), (t_last, n_last, cpu_last) = marks[0], marks[-1]
    seconds, trainings = t_last - t_first, n_last - n_first
    results = [r.result for r in campaign.state.records.values()]
    slots: dict[int, int] = {}
    for ev in results:
        w = getattr(ev, "worker", None)
        slots[w] = slots.get(w, 0) + 1
    wall_s = _finite_mean(getattr(ev, "wall_s", None) for ev in results)
    train_s = _finite_mean(getattr(ev, "seconds", None) for ev in results)
    # work on a worker that is neither training nor the call's bookkeeping: compiling, mostly
    extra = [ev.wall_s - ev.seconds for ev in results if math.isfinite(getattr(ev, "seconds", math.nan))]
    stats = campaign.stats
    return {"workers": k, "seconds": seconds, "trainings": trainings, "trainings_per_s": trainings / seconds,
            "evaluated": stats.evaluated, "records": len(campaign.state.records), "children": stats.children,
            "cache_hits": stats.cache_hits, "generated": stats.generated, "campaign_s": wall,
            "slots": {str(w): n for w, n in sorted(slots.items(), key=lambda x: (x[0] is None, x[0] or 0))},
            "train_s_per_candidate": train_s, "worker_s_per_candidate": wall_s,
            "max_worker_overhead_s": max(extra) if extra else None,
            "workers_busy": None if wall_s is None else wall_s * trainings / (k * seconds),
            "driver_cpu_s_per_training": (cpu_last - cpu_first) / trainings,  # all threads of this process
            "best_fitness": float(campaign.best.fitness)}


def _warm_programs(records) -> list[str]:
    """One trained program per program-size bucket (what an actor compiles once per task), as texts."""
    programs = [eliminate_dead_code(r.program) for r in records]
    try:
        from symopt.evaluation.lowering import lower

        by_bucket = {}
        for p in programs:
            by_bucket.setdefault(lower(p).bucket, p)
        chosen = list(by_bucket.values())
    except Exception:  # not lowerable here (toy tasks take any program): the longest one
        chosen = [max(programs, key=lambda p: len(p.body))]
    return [str(p) for p in chosen]


def measure_campaign(pool, config, budget: int | None = None, seed: int | None = None, repeats: int = 1,
                     warmup_budget: int | None = None, warmup_seed: int | None = None,
                     steps: int | None = None) -> dict:
    """Trainings/s of the search stage of ``config`` on 1 and on all actors of ``pool``; see the module docstring.

    ``pool`` is a started :class:`~symopt.distributed.EvaluatorPool`; ``config`` whatever
    :func:`symopt.config.space.load` takes. Returns the figures as a dict.
    """
    n = pool.workers
    cfg = first_stage(config, budget, seed, steps)
    c = cfg.campaign
    warmup_seed = c.seed + 1 if warmup_seed is None else int(warmup_seed)
    warmup_budget = min(c.budget, WARMUP_BUDGET) if warmup_budget is None else int(warmup_budget)
    stage = c.stages[0]
    out: dict = {"mode": "campaign", "config": cfg.name, "source": cfg.source, "stage": stage.name or "stage1",
                 "tasks": list(stage.tasks), "steps": stage.steps or None, "seeds": list(stage.seeds or c.seeds),
                 "budget": c.budget, "seed": c.seed, "workers": n, "repeats": repeats,
                 "warmup_seed": warmup_seed, "warmup_budget": warmup_budget, "compile_excluded": True,
                 "max_in_flight": pool.max_in_flight, "pin": pool.pin, "load_average_before": os.getloadavg()[0]}
    t0 = time.perf_counter()
    out["workers_info"] = pool.wait_ready(timeout=300)
    out["start_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()  # untimed warm-up: every actor compiles what this campaign meets
    warmup = search(cfg.replace_campaign(seed=warmup_seed, budget=warmup_budget), backend=pool.backend)
    out["warmup_s"] = time.perf_counter() - t0
    texts = _warm_programs(warmup.state.records.values())
    out["warm_programs"] = len(texts)
    out["warm_s"] = pool.warm(texts, stage.tasks, stage.seeds or c.seeds, stage.steps or None)
    out["other_busy_cores_before"] = busy_cores(1.0)
    sizes = sorted({1, n})
    runs: dict[int, list[dict]] = {k: [] for k in sizes}
    for _ in range(repeats):  # interleaved, so a change in the machine's load hits both alike
        for k in sizes:
            runs[k].append(timed_search(pool, cfg, k))
    out["other_busy_cores_after"] = busy_cores(1.0)
    for k in sizes:
        rates = [r["trainings_per_s"] for r in runs[k]]
        out[f"workers_{k}"] = {
            "trainings_per_s": max(rates), "trainings_per_s_median": statistics.median(rates),
            "train_s_per_candidate": _finite_mean(r["train_s_per_candidate"] for r in runs[k]),
            "worker_s_per_candidate": _finite_mean(r["worker_s_per_candidate"] for r in runs[k]),
            "workers_busy": _finite_mean(r["workers_busy"] for r in runs[k]),
            "driver_cpu_s_per_training": _finite_mean(r["driver_cpu_s_per_training"] for r in runs[k]),
            "cache_hits": [r["cache_hits"] for r in runs[k]], "runs": runs[k]}
    _scaling(out, "trainings_per_s", n)
    return out


def run_campaign(config, workers: int | None = None, budget: int | None = None, seed: int = 0, repeats: int = 1,
                 address: str | None = None, pin: bool = True, steps: int | None = None,
                 warmup_budget: int | None = None, max_in_flight: int = 2, insecure: bool = False) -> dict:
    """Start or join Ray, then :func:`measure_campaign` on a pool of ``workers`` actors."""
    cluster = _connect(address, insecure)  # before anything computes with JAX here
    n = int(workers or cluster["free_cpus"] or 1)
    cfg = first_stage(config, budget, seed, steps)
    stage = cfg.campaign.stages[0]
    with EvaluatorPool(stage.tasks, stage.seeds or cfg.campaign.seeds, stage.steps or None, workers=n,
                       max_in_flight=max_in_flight, pin=pin) as pool:
        out = measure_campaign(pool, cfg, repeats=repeats, warmup_budget=warmup_budget)
    out["cluster"] = describe()
    return out


def report_campaign(r: dict) -> str:
    """The campaign mode's figures as a few lines."""
    n = r["workers"]
    steps = r["steps"] if r["steps"] is not None else "default"
    lines = [
        f"campaign {r['config']}, search stage {r['stage']} ({', '.join(r['tasks'])}; {steps} steps, seeds "
        f"{r['seeds']}), budget {r['budget']}, seed {r['seed']}, {r['repeats']} campaign(s) per size, interleaved",
        f"compilation excluded: warm-up campaign (seed {r['warmup_seed']}, budget {r['warmup_budget']}) on all "
        f"{n} workers {r['warmup_s']:.0f} s, then {r['warm_programs']} program(s) of each size bucket on every "
        f"worker {r['warm_s']:.1f} s",
        _machine_line(r),
    ]
    for k in sorted({1, n}):
        m = r[f"workers_{k}"]
        per = m["train_s_per_candidate"]
        busy, driver = m["workers_busy"], m.get("driver_cpu_s_per_training")
        runs = ", ".join(f"{x['trainings']} in {x['seconds']:.1f} s" for x in m["runs"])
        lines.append(f"  {k:3d} worker{'s' if k > 1 else ' '} {m['trainings_per_s']:9.1f} trainings/s best, "
                     f"{m['trainings_per_s_median']:9.1f} median   "
                     f"({'?' if per is None else f'{per * 1e3:.1f}'} ms training per candidate, workers busy "
                     f"{'?' if busy is None else f'{busy:.0%}'}, driver CPU "
                     f"{'?' if driver is None else f'{driver * 1e3:.1f}'} ms per training, cache hits "
                     f"{m['cache_hits']}; {runs})")
    lines.append(_speedup_line(r))
    return "\n".join(lines)


def json_safe(x):
    """``x`` with every NaN or infinity replaced by None (strict JSON has neither)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=None, help="N (default: the cluster's free CPUs)")
    parser.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES,
                        help=f"candidates per round (default: {DEFAULT_CANDIDATES})")
    parser.add_argument("--task", default=DEFAULT_TASK, help=f"proxy task (default: {DEFAULT_TASK})")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the task's)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed rounds per size (default: 5), or campaigns per size with --campaign (default: 1)")
    parser.add_argument("--address", default=None, help="join this Ray cluster (default: RAY_ADDRESS, else local)")
    parser.add_argument("--insecure", action="store_true", help=INSECURE_HELP)
    parser.add_argument("--no-pin", action="store_true", help="do not pin each worker to one core")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    campaign = parser.add_argument_group("campaign mode", "time the search stage of a campaign instead of rounds "
                                         "of fixed candidates")
    campaign.add_argument("--campaign", metavar="CONFIG", default=None,
                          help="a configuration name in search_spaces/ or a TOML file")
    campaign.add_argument("--budget", type=int, default=None,
                          help="trainings per timed campaign (default: the configuration's)")
    campaign.add_argument("--seed", type=int, default=0, help="seed of every timed campaign (default: 0)")
    campaign.add_argument("--warmup-budget", type=int, default=None,
                          help=f"trainings of the untimed warm-up campaign (default: --budget, at most "
                               f"{WARMUP_BUDGET})")


def main(args: argparse.Namespace) -> int:
    insecure = bool(getattr(args, "insecure", False))
    try:
        if getattr(args, "campaign", None):
            r = run_campaign(args.campaign, args.workers, args.budget, args.seed, repeats=args.repeats or 1,
                             address=args.address, pin=not args.no_pin, steps=args.steps,
                             warmup_budget=args.warmup_budget, insecure=insecure)
            print(json.dumps(json_safe(r)) if args.json else report_campaign(r))
            return 0
        r = run(args.workers, args.candidates, args.task, args.steps, repeats=args.repeats or 5,
                address=args.address, pin=not args.no_pin, insecure=insecure)
    except ClusterAuthError as e:
        print(f"symopt bench scale: {e}", file=sys.stderr)
        return 1
    print(json.dumps(r) if args.json else report(r))
    return 0


if __name__ == "__main__":  # python -m symopt.cli.bench_scale (until the CLI wires it in)
    _parser = argparse.ArgumentParser(prog="symopt bench scale", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    raise SystemExit(main(_parser.parse_args()))
