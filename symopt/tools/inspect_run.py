"""``symopt inspect RUN``: a run directory's hall of fame as a plain-text table.

Reads ``RUN/hall_of_fame.json`` (written by ``symopt search``): one row per entry
with its rank, the simplified program (its return line and statement count, the
full text under the row), its fitness on every funnel stage and on validation, and
its optimizer state memory (live state slots x 4 bytes per parameter in float32; a factored slot, one number
per row or column, counts rows + columns),
and, from ``RUN/lineage.jsonl``, its ancestry back to the start program.
"""

from __future__ import annotations

import pathlib

from symopt.programs.checker import state_kinds
from symopt.programs.functions import Kind
from symopt.programs.liveness import live_states
from symopt.programs.program import Program
from symopt.evolve.evolution import Event
from symopt.storage.run_dir import HallOfFame, RunError, ancestry


def entry_program(data: HallOfFame, rank: int, run: str | pathlib.Path = "", simplified: bool = True) -> Program:
    """The Program of hall-of-fame rank ``rank`` (1-based; the simplified form by default) of
    :func:`~symopt.storage.run_dir.read_hall_of_fame`'s hall of fame. Raises RunError."""
    entries = data.entries
    if not entries:
        raise RunError(f"run {str(run)!r}: the hall of fame is empty")
    if not 1 <= rank <= len(entries):
        raise RunError(f"run {str(run)!r}: no rank {rank}; available ranks: 1 to {len(entries)}"
                       if len(entries) > 1 else f"run {str(run)!r}: no rank {rank}; the only rank is 1")
    entry = entries[rank - 1]
    return entry.simplified if simplified and entry.simplified else entry.program


REFERENCE_MATRIX = 1024
"""Factored state is counted per parameter of a REFERENCE_MATRIX x REFERENCE_MATRIX matrix: rows + columns."""


def _slot_counts(program) -> tuple[int, int]:
    """(full slots, factored slots) among the state slots that can reach the update."""
    held = state_kinds(program)
    live = live_states(program)
    factored = sum(held[s] in (Kind.ROWS, Kind.COLS) for s in live)
    return len(live) - factored, factored


def state_bytes(program) -> float:
    """Optimizer state per parameter in float32: 4 bytes for each state slot that can reach the update and
    holds one number per parameter; a factored slot (one number per row, or per column: Adafactor's) holds
    4 bytes per row of a REFERENCE_MATRIX-square matrix, 4 / REFERENCE_MATRIX per parameter.

    A slot that never influences the update (dead) costs nothing once exported, so it is not counted.
    """
    full, factored = _slot_counts(program)
    return round(4 * full + 4 * factored / REFERENCE_MATRIX, 4)


def state_memory(program) -> str:
    """``"2 slots = 8 B/param"``: optimizer state per parameter in float32 (live slots only); factored slots
    apart (``"1 slot + 2 factored = 4.008 B/param"``)."""
    full, factored = _slot_counts(program)
    text = f"{full} slot{'s' if full != 1 else ''}"
    if factored:
        text += f" + {factored} factored"
    return f"{text} = {state_bytes(program):g} B/param"


def _fmt(value) -> str:
    return "-" if value is None else f"{value:+.3f}"


def table(data: HallOfFame, brief: bool = False, lineage: dict[int, Event] | None = None) -> str:
    """The hall of fame as text (see the module docstring); with ``lineage``, each entry's ancestry too."""
    entries = data.entries
    listed = [("ref", data.reference)] * bool(data.reference) + list(enumerate(entries, 1))
    stages: list[str] = []
    for _, e in listed:
        for k in e.fitness:
            if k not in stages:
                stages.append(k)
    header = ["rank", "id", *stages, "validation", "state", "program (simplified)"]
    rows, texts = [], []
    for rank, e in listed:
        program = e.simplified or e.program
        n = len(program.body)
        summary = "; ".join(line.strip() for line in str(program).rstrip("\n").splitlines()[1:])
        if len(summary) > 72:
            summary = summary[:69] + "..."
        summary = f"[{n} stmt] {summary}"
        rows.append([f"#{rank}" if rank != "ref" else "start", "" if e.id is None else str(e.id),
                     *[_fmt(e.fitness.get(s)) for s in stages], _fmt(e.validation),
                     state_memory(program), summary])
        texts.append(str(program))
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header) - 1)]

    def line(cells):
        return "  ".join(c.rjust(w) if 0 < i < len(widths) - 1 else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))) + "  " + cells[-1]

    out = [line(header), line(["-" * w for w in widths] + ["-" * 20])]
    ids = [e.id for _, e in listed]
    for row, text, id in zip(rows, texts, ids):
        out.append(line(row))
        if not brief:
            out += ["      " + t for t in text.rstrip("\n").splitlines()]
            if lineage and id in lineage and id != 0:
                chain = ancestry(lineage, id)
                steps = len(chain) - 1
                plural = "s" if steps != 1 else ""
                out.append(f"      lineage ({steps} mutation{plural}): " + " > ".join(map(str, chain)))
            out.append("")
    note = ("fitness: mean over tasks of the gain in log eval loss over AdamW, each at its best learning rate, "
            "in units of AdamW's own progress on the task (0 = AdamW, higher is better); "
            "state: optimizer memory per parameter in float32")
    return "\n".join(out).rstrip("\n") + "\n\n" + note


