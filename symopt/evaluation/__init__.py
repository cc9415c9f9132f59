"""Evaluation engine: programs trained on proxy tasks by a compile-once interpreter.

* :mod:`~symopt.evaluation.opcodes`: the instruction set;
* :mod:`~symopt.evaluation.lowering`: a program to arrays (opcodes, registers, constants);
* :mod:`~symopt.evaluation.interpreter`: the compiled training machine, one per task;
* :mod:`~symopt.evaluation.fitness`: scores against the AdamW reference;
* :mod:`~symopt.evaluation.evaluate`: :func:`evaluate` and :class:`Result` (the public API);
* :mod:`~symopt.evaluation.compiles`: counting XLA compilations;
* :mod:`~symopt.cli.bench_eval`: ``symopt bench eval``.
"""

from symopt.evaluation.evaluate import Result, Run, chunk_plan, clear_caches, evaluate, reference, reference_program
from symopt.evaluation.fitness import DEFAULT_FACTORS, DIVERGENCE_FACTOR, LOSS_FLOOR, WORST_FITNESS, Grid
from symopt.evaluation.lowering import Bucket, Lowered, lower

__all__ = ["Bucket", "DEFAULT_FACTORS", "DIVERGENCE_FACTOR", "Grid", "LOSS_FLOOR", "Lowered", "Result", "Run",
           "WORST_FITNESS", "chunk_plan", "clear_caches", "evaluate", "lower", "reference", "reference_program"]
