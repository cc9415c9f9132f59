"""Evaluation engine: programs trained on proxy tasks by a compile-once interpreter.

* :mod:`~symopt.evaluation.opcodes`: the instruction set;
* :mod:`~symopt.evaluation.lowering`: a program to arrays (opcodes, registers, constants);
* :mod:`~symopt.evaluation.packing`: many lowered programs as one batch;
* :mod:`~symopt.evaluation.interpreter`: the compiled training machine, one per task;
* :mod:`~symopt.evaluation.fitness`: scores against the AdamW reference;
* :mod:`~symopt.evaluation.evaluator`: :func:`evaluate` and :class:`Result` (the public API);
* :mod:`~symopt.evaluation.toy`: the NumPy evaluator of the ``toy_*`` tasks (no JAX);
* :mod:`~symopt.evaluation.compiles`: counting XLA compilations.
"""

from symopt.evaluation.evaluator import Result, Run, evaluate
from symopt.evaluation.fitness import Grid

__all__ = ["Grid", "Result", "Run", "evaluate"]
