"""Many lowered programs as one batch of interpreter arguments: code, sizes and per-step scalar slots.

The batch is padded to a :class:`~symopt.evaluation.lowering.Bucket` so that one
compiled interpreter runs every candidate of that size; unused slots are idle.
"""

from __future__ import annotations

import numpy as np

from symopt.evaluation.lowering import FIELDS, ROW_ZERO, Bucket, Lowered
from symopt.evaluation.opcodes import InstructionSet, instruction_set


def pack(lowered: list[Lowered], bucket: Bucket, k: int | None = None,
         ops: InstructionSet | None = None) -> dict[str, np.ndarray]:
    """Stack lowered programs, padded to ``bucket``, into the interpreter's program arguments.

    Keys: ``code`` [K, size, FIELDS], ``n`` [K], ``update_row`` [K]; K is ``k`` (default:
    one per program) and the slots past the programs are idle (no instructions, a zero update).
    Opcodes are numbered as the branches of an executable of the instruction set ``ops`` (default:
    every opcode). The scalar slots come from :func:`scalars`.
    """
    ops = ops or instruction_set()
    k = len(lowered) if k is None else k
    if k < len(lowered):
        raise ValueError(f"{len(lowered)} programs do not fit in {k} slots")
    out = dict(code=np.zeros((k, bucket.size, FIELDS), np.int32), n=np.zeros(k, np.int32),
               update_row=np.full(k, ROW_ZERO, np.int32))
    for j, low in enumerate(lowered):
        if not bucket.holds(low.bucket):
            raise ValueError(f"program {low.program.name!r} needs {low.bucket}, larger than {bucket}")
        out["code"][j, :len(low.main)] = low.main
        out["code"][j, :len(low.main), 0] = ops.local(low.main[:, 0], f"program {low.program.name!r}")
        out["n"][j] = len(low.main)
        out["update_row"][j] = low.update_row
    return out


def scalars(lowered: list[Lowered], bucket: Bucket, learning_rates, steps: int,
            k: int | None = None) -> np.ndarray:
    """The scalar slots of every program at every step: float32 [K, steps, bucket.slots].

    ``learning_rates``: one rate, a schedule ``[steps]`` for all programs, or one schedule
    per program ``[len(lowered), steps]``.
    """
    out = np.zeros((len(lowered) if k is None else k, steps, bucket.slots), np.float32)
    rates = np.broadcast_to(np.asarray(learning_rates, np.float32), (len(lowered), steps))
    for j, low in enumerate(lowered):
        out[j, :, :low.n_slots] = low.scalars(rates[j], 0, steps)
    return out

