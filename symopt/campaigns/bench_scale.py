"""``symopt bench scale``: evaluations per second with 1 worker and with N, on the same candidates.

    symopt bench scale --workers 2 --candidates 96 --task mlp_digits

Starts (or joins, ``--address`` / ``RAY_ADDRESS``) Ray first, before any JAX in
this process, then one :class:`~symopt.campaigns.EvaluatorPool` of N actors,
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
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

DEFAULT_TASK = "mlp_digits"
DEFAULT_CANDIDATES = 96
TARGET_EFFICIENCY = 0.9


def candidates(k: int) -> list[str]:
    """K distinct program texts: baselines with their constants in (0, 1) scaled by 1 - 0.002 j."""
    import dataclasses

    from symopt.programs import baselines
    from symopt.programs.program import Assign, Call, Const

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


def run(workers: int | None = None, n_candidates: int = DEFAULT_CANDIDATES, task: str = DEFAULT_TASK,
        steps: int | None = None, seeds=(0,), repeats: int = 5, address: str | None = None,
        max_in_flight: int = 2, pin: bool = True) -> dict:
    """Measure; returns the figures as a dict (see the module docstring)."""
    from symopt.campaigns.ray_pool import EvaluatorPool, connect, describe

    cluster = connect(address)  # before anything computes with JAX here
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
    one, many = out["workers_1"], out[f"workers_{n}"]
    out.update(evals_per_s_1=one["evals_per_s"], evals_per_s_n=many["evals_per_s"],
               speedup=many["evals_per_s"] / one["evals_per_s"],
               speedup_median=many["evals_per_s_median"] / one["evals_per_s_median"],
               target_efficiency=TARGET_EFFICIENCY, load_average_after=os.getloadavg()[0],
               cpus=len(os.sched_getaffinity(0)))
    out["efficiency"] = out["speedup"] / n
    out["efficiency_median"] = out["speedup_median"] / n
    return out


def report(r: dict) -> str:
    """The figures as a few lines."""
    n = r["workers"]
    steps = r["steps"] if r["steps"] is not None else "default"
    lines = [
        f"task {r['task']} ({steps} steps, seeds {r['seeds']}), {r['candidates']} candidates per round, "
        f"{r['repeats']} rounds per size, interleaved; {r['cluster']['cpus']:.0f} cluster CPUs, {r['cpus']} here; "
        f"load {r['load_average_before']:.2f} -> {r['load_average_after']:.2f}, other processes busy on "
        f"{_cores(r['other_busy_cores_before'])} -> {_cores(r['other_busy_cores_after'])} cores",
    ]
    for k in sorted({1, n}):
        m = r[f"workers_{k}"]
        lines.append(f"  {k:3d} worker{'s' if k > 1 else ' '} {m['evals_per_s']:9.1f} evaluations/s best, "
                     f"{m['evals_per_s_median']:9.1f} median   ({m['train_s_per_candidate'] * 1e3:.1f} ms training "
                     f"per candidate)")
    lines.append(f"  speed-up {r['speedup']:.2f} best / {r['speedup_median']:.2f} median; efficiency "
                 f"{r['efficiency']:.2f} / {r['efficiency_median']:.2f} (target >= {r['target_efficiency']})")
    return "\n".join(lines)


def _cores(x) -> str:
    return "?" if x is None else f"{x['normal']:.2f} (+{x['niced']:.2f} niced)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=None, help="N (default: the cluster's free CPUs)")
    parser.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES,
                        help=f"candidates per round (default: {DEFAULT_CANDIDATES})")
    parser.add_argument("--task", default=DEFAULT_TASK, help=f"proxy task (default: {DEFAULT_TASK})")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the task's)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per size (default: 5)")
    parser.add_argument("--address", default=None, help="join this Ray cluster (default: RAY_ADDRESS, else local)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin each worker to one core")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def main(args: argparse.Namespace) -> int:
    r = run(args.workers, args.candidates, args.task, args.steps, repeats=args.repeats, address=args.address,
            pin=not args.no_pin)
    print(json.dumps(r) if args.json else report(r))
    return 0


if __name__ == "__main__":  # python -m symopt.campaigns.bench_scale (until the CLI wires it in)
    _parser = argparse.ArgumentParser(prog="symopt bench scale", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    raise SystemExit(main(_parser.parse_args()))
