"""``symopt bench compile``: what a campaign's executables cost to compile, to load, and to run per instruction.

    taskset -c 0 symopt bench compile [--task lm_char_short] [--config quick]

On one proxy task, the run executable a campaign's search stage trains on (its
first stage's learning-rate factors as slots, AdamW's bucket, the task's steps):

* ``compile_all_s``: CPU seconds to compile it with every opcode, the cache off;
* ``compile_config_s``: the same with the configuration's instruction set
  (:func:`symopt.campaign.campaign.campaign_functions`), as its campaigns compile it;
* ``load_s``: seconds to load that executable from the persistent compilation cache;
* ``per_instruction_us``: microseconds per instruction and step in buckets of 32 to
  256 instructions: a program that fills most of the bucket, less AdamW in the same
  bucket, divided by the extra instructions (the large-bucket cliff: ``ratio_128_32``).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import proxy_tasks
from symopt.evaluation import compile_cache
from symopt.evaluation.evaluator import chunk_plan, instructions
from symopt.evaluation.interpreter import Interpreter
from symopt.evaluation.lowering import Bucket, lower
from symopt.evaluation.packing import pack, scalars
from symopt.programs import baselines
from symopt.programs.parser import parse
from symopt.campaign.campaign import campaign_functions
from symopt.config.space import load
from symopt.config.start import start_program

BUCKETS = (32, 64, 128, 256)


def _compile_s(task, bucket, plan, k, ops) -> float:
    t0 = time.process_time()
    Interpreter(task).run(bucket, plan, k, "single" if k == 1 else "loop", ops)
    return time.process_time() - t0


def _chain(n: int):
    """A program of about 2n + 2 instructions: a moment, then n steps of ``x = tanh(x) * 0.999``."""
    body = "".join("    x = tanh(x) * 0.999\n" for _ in range(n))
    return parse(f"def chain(g, m):\n    m = interpolate(m, g, 0.1)\n    x = m\n{body}    return x, m\n")


def _step_s(it: Interpreter, program, bucket: Bucket, steps: int, repeats: int) -> float:
    """Seconds per training step of one program in ``bucket`` (best of ``repeats``)."""
    low, plan, ops = lower(program), chunk_plan(steps), instructions(None)
    args = pack([low], bucket, 1, ops)
    table = scalars([low], bucket, it.task.learning_rates(1.0, steps), steps)
    flat, key = it.init(0)
    exe = it.run(bucket, plan, 1, "single", ops)
    best = float("inf")
    for _ in range(repeats + 1):  # the first call warms up
        state = it.start(bucket, steps, flat[None], 1)
        t0 = time.perf_counter()
        state, evals = exe(state, args["code"], args["n"], table, args["update_row"], key[None], np.int32(0),
                           np.int32(len(plan)))
        np.asarray(evals)
        best = min(best, time.perf_counter() - t0)
    return best / steps


def run(task_name: str, config: str, repeats: int = 5) -> dict:
    cfg = load(config)
    task = proxy_tasks.get(task_name)
    plan, k = chunk_plan(task.steps), len(cfg.campaign.stages[0].lr_factors)
    bucket = lower(baselines.get("adamw")).bucket
    own = instructions(campaign_functions(cfg, start_program(cfg.campaign.start, cfg.space)))
    with compile_cache.disabled():
        every_s = _compile_s(task, bucket, plan, k, instructions(None))
        config_s = _compile_s(task, bucket, plan, k, own)
    _compile_s(task, bucket, plan, k, own)  # into the cache (if it was not there)
    t0 = time.perf_counter()
    Interpreter(task).run(bucket, plan, k, "loop" if k > 1 else "single", own)
    load_s = time.perf_counter() - t0
    it = Interpreter(task)
    adamw = baselines.get("adamw")
    per: dict[int, float] = {}
    for size in BUCKETS:
        b = Bucket(size, lower(adamw).bucket.states)
        chain = _chain((size * 3 // 4) // 2)
        n_extra = len(lower(chain)) - len(lower(adamw))
        per[size] = 1e6 * (_step_s(it, chain, b, task.steps, repeats) - _step_s(it, adamw, b, task.steps, repeats)) \
            / n_extra
    return {"task": task.name, "config": cfg.name, "k": k, "opcodes_all": len(instructions(None)),
            "opcodes_config": len(own), "compile_all_s": every_s, "compile_config_s": config_s, "load_s": load_s,
            "cache": str(compile_cache.enable()), "per_instruction_us": {str(s): v for s, v in per.items()},
            "ratio_128_32": per[128] / per[32]}


def report(r: dict) -> str:
    per = ", ".join(f"{s}: {v:.2f}" for s, v in r["per_instruction_us"].items())
    return "\n".join([
        f"task {r['task']}, the search stage of {r['config']} (K = {r['k']} slots), AdamW's bucket:",
        f"  compile, every opcode ({r['opcodes_all']})       {r['compile_all_s']:6.2f} CPU s",
        f"  compile, {r['config']}'s instruction set ({r['opcodes_config']})  {r['compile_config_s']:6.2f} CPU s",
        f"  load from the cache                 {r['load_s']:6.2f} s   ({r['cache']})",
        f"  us per instruction and step by bucket: {per}; 128 / 32 = {r['ratio_128_32']:.2f} (target <= 1.5)",
    ])


def main(args: argparse.Namespace) -> int:
    r = run(args.task, args.config, args.repeats)
    print(json.dumps(r) if args.json else report(r))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--task", default="lm_char_short", help="proxy task (default: lm_char_short)")
    parser.add_argument("--config", default="quick", help="search configuration (default: quick)")
    parser.add_argument("--repeats", type=int, default=5, help="timing rounds per bucket (default: 5)")
