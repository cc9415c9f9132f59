"""Derivation: a found program shortened step by step, each step checked by training (as the Lion paper did by hand).

``derive(program, config)`` tries, in this order and again from the top after
every step that holds, until none holds:

1. ``remove``: remove one statement (later reads of its name see the previous
   value), then the code that became dead (dead code of the start program
   goes first, in one exact step);
2. ``replace``: replace a library call by one of its non-constant arguments: a
   function acting as an identity on the values seen (a clip that never bites,
   ``arcsin`` of small numbers, ``max(x, tiny)``); not an operator (dropping a
   term or a factor is a removal's job, and ``c * c -> c`` is no identity);
3. ``round``: round a constant to fewer significant digits, coarsest first
   (0.899 -> 0.9, 0.6882 -> 0.7 before 0.69 before 0.688);
4. ``rewrite``: known rewrites: ``x / sqrt(x * x)``, ``x / sqrt(square(x))`` and
   ``x / abs(x)`` -> ``sign(x)`` (seen through intermediate names); with the
   language's guarded division these are not exact near 0, so they are trained.

Within a kind, candidates are tried in order until one holds: one that
:func:`symopt.symbolic.equivalent` proves to compute what the current program
computes holds without training (``exact``); the others are trained. When
none holds, the trusted simplifier (:func:`symopt.simplify`) rewrites the
program if that is shorter (exact by construction), and the steps go on from
there (its folded constants may round); every step shortens the program or a
constant, so the derivation ends.

The fitness is the campaign's search-stage fitness: the stage's tasks, seeds,
steps and learning-rate grid (``stage.grid``), trained by the campaign's
backend (:func:`symopt.campaign.campaign.serial_backend`). A step holds when
the candidate's fitness is at least the *start* program's fitness minus the
tolerance (against the start, not the previous step, so small losses cannot
add up). Unless given, the tolerance is the noise of that comparison, a
paired one: candidate and start train on the same seeds, so what varies
between seed sets (which task draws are easy) cancels, and what is left is
training's sensitivity to any change at all: a program that differs in the
last bits of its arithmetic (a clip that never bites) ends at another
fitness. That noise is measured on the start against a program that differs
from it only by a factor ``1 + 2**-20`` on its update (:func:`perturbed`),
on the stage's seeds and ``noise_sets`` further seed sets of the same size
(each seed + 1000 k): the tolerance is :data:`NOISE_SIGMAS` times the root
mean square of those paired differences (a factor that small changes nothing
on average: their mean is 0). The spread of the start's own fitness over the
seed sets (the tolerance before) is reported beside it but not used: it holds
the seed sets' difficulty, which a paired comparison does not see (on
``examples/digits.toml`` it is twice the paired tolerance). A candidate
that changes what the program does gets a paired difference noisier than
this (its effect can vary between seed sets too), so the rule errs towards
refusing a step, that is keeping the program as it was.
Trainings are cached by program text: a candidate met again costs nothing.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterator, Sequence

from symopt.evaluation.fitness import fitness_of
from symopt.programs.checker import check
from symopt.programs.errors import ProgramError
from symopt.programs.liveness import eliminate_dead_code, size
from symopt.programs.parser import parse
from symopt.programs.program import Assign, Call, Const, Expr, Program, Var, format_expr
from symopt.campaign.campaign import resolve_backend, validator
from symopt.config.space import MAX_STEPS, load, stage_name
from symopt.symbolic.equivalence import equivalent
from symopt.symbolic.simplify import simplify

KINDS = ("remove", "replace", "round", "rewrite")
"""The derivation steps, in the order they are tried."""
OPERATORS = frozenset({"+", "-", "*", "/", "neg"})
"""Calls that ``replace`` leaves alone."""
NOISE_SETS = 2
"""Further seed sets (beside the stage's) on which the start and :func:`perturbed` train to measure the noise."""
NOISE_SEED_OFFSET = 1000
MAX_NOISE_SETS = 100
"""The most further seed sets ``noise_sets`` may ask for (each costs two trainings)."""
NOISE_SIGMAS = 2.0
"""The tolerance in standard deviations of the paired noise. Estimated from 3 differences (the default), a
step that changes nothing is refused by chance 7% of the time (Student's t with 3 degrees of freedom)."""
PERTURBATION = 1.0 + 2.0 ** -20
"""The factor on the update of :func:`perturbed`: a change of the last bits (float32 has 23), no change of
behaviour (a learning rate 1e-6 larger); from 2**-16 to 2**-20 it measures the same noise."""


@dataclasses.dataclass(frozen=True)
class Step:
    """One row of a derivation: what changed, the program after it, its fitness, and how it was checked."""

    number: int
    kind: str  # "start", one of KINDS, or "simplify"
    change: str
    program: Program
    fitness: float
    check: str  # "trained", "exact" (proven equivalent, not trained) or "start"

    def as_json(self) -> dict:
        return {"step": self.number, "kind": self.kind, "change": self.change, "statements": len(self.program.body),
                "fitness": _finite(self.fitness), "check": self.check, "program": str(self.program)}


@dataclasses.dataclass
class Derivation:
    """The outcome of :func:`derive`: the steps that held, the tolerance, and what was refused."""

    steps: list[Step]
    tolerance: float
    tolerance_from: str  # "paired noise" or "given"
    noise: list[float]
    """The paired noise: on each seed set (the stage's first), :func:`perturbed`'s fitness minus the start's
    (empty when the tolerance was given)."""
    refused: list[tuple[str, str, float]]  # (kind, change, fitness) of every trained candidate that did not hold
    trained: int
    cache_hits: int
    stage: str = ""
    start_on_seed_sets: list[float] = dataclasses.field(default_factory=list)
    """The start's fitness on each of those seed sets: their spread is not the noise of a paired comparison."""
    validation: dict | None = None
    """With ``validate``: ``{"tasks": [...], "start": fitness, "derived": fitness}`` on the validation tasks."""

    @property
    def start(self) -> Step:
        return self.steps[0]

    @property
    def derived(self) -> Program:
        """The shortest program that holds: the last step's."""
        return self.steps[-1].program

    @property
    def floor(self) -> float:
        """The lowest fitness a step may have and hold."""
        return self.start.fitness - self.tolerance

    def table(self) -> str:
        """The derivation as text: one row per step, then the derived program in full."""
        header = ("step", "change", "stmts", "fitness", "check")
        rows = [(str(s.number), s.change, str(len(s.program.body)), f"{s.fitness:+.4f}", s.check)
                for s in self.steps]
        widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
        right = (True, False, True, True, False)

        def line(cells):
            return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

        how = "given"
        if self.tolerance_from == "paired noise":
            how = (f"{NOISE_SIGMAS:g} x the paired noise {noise_sd(self.noise):.4f}, the root mean square of "
                   f"{', '.join(f'{f:+.4f}' for f in self.noise)}: a program that differs from the start only in "
                   f"its last bits, against the start on {len(self.noise)} seed sets")
        out = [f"derivation on stage {self.stage!r}: a step holds at fitness >= {self.floor:+.4f} "
               f"(start {self.start.fitness:+.4f} - tolerance {self.tolerance:.4f}, {how})", "",
               line(header), line(["-" * w for w in widths])]
        out += [line(r) for r in rows]
        out += ["", f"{self.trained} trainings, {self.cache_hits} cache hits, {len(self.refused)} candidates refused",
                f"derived ({len(self.start.program.body)} -> {len(self.derived.body)} statements, "
                f"fitness {self.start.fitness:+.4f} -> {self.steps[-1].fitness:+.4f}):", "",
                str(self.derived).rstrip("\n")]
        if self.validation:
            v = self.validation
            out.insert(-2, f"validation ({', '.join(v['tasks'])}): {v['start']:+.4f} -> {v['derived']:+.4f}")
        return "\n".join(out)

    def as_json(self) -> dict:
        return {"stage": self.stage, "start": str(self.start.program), "derived": str(self.derived),
                "tolerance": self.tolerance, "tolerance_from": self.tolerance_from,
                "noise": [_finite(f) for f in self.noise],
                "start_on_seed_sets": [_finite(f) for f in self.start_on_seed_sets], "floor": _finite(self.floor),
                "steps": [s.as_json() for s in self.steps], "trained": self.trained, "cache_hits": self.cache_hits,
                "refused": [{"kind": k, "change": c, "fitness": _finite(f)} for k, c, f in self.refused],
                "validation": self.validation and {k: _finite(v) if k != "tasks" else v
                                                   for k, v in self.validation.items()}}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def noise_sd(differences: Sequence[float]) -> float:
    """The standard deviation of paired differences whose mean is 0: their root mean square (0 for none)."""
    return math.sqrt(sum(d * d for d in differences) / len(differences)) if differences else 0.0


def perturbed(program: Program) -> Program:
    """``program`` with its update times :data:`PERTURBATION`: what it does, but not bit for bit."""
    update = Call("*", (program.returns[0], Const(PERTURBATION)))
    return Program(program.args, program.body, (update,) + program.returns[1:], program.name)


# --- candidates -------------------------------------------------------------------------------------

Options = Callable[[Expr, int], Sequence[tuple[Expr, str]]]
"""For a node of statement ``i`` (``len(body)`` for the returns): its replacements and how each reads."""


def _variants(expr: Expr, options: Options, where: int) -> Iterator[tuple[Expr, str]]:
    """``expr`` with one node replaced by one of its options, for every node (outermost first) and option."""
    for new, change in options(expr, where):
        yield new, change
    if isinstance(expr, Call):
        for j, arg in enumerate(expr.args):
            for new, change in _variants(arg, options, where):
                yield Call(expr.fn, expr.args[:j] + (new,) + expr.args[j + 1:]), change


def _edits(program: Program, options: Options) -> Iterator[tuple[Program, str]]:
    """Every program with one node of one statement or return replaced by one of its options."""
    body, n = program.body, len(program.body)
    for i, stmt in enumerate(body):
        for new, change in _variants(stmt.value, options, i):
            yield Program(program.args, body[:i] + (Assign(stmt.target, new),) + body[i + 1:], program.returns,
                          program.name), change
    for k, ret in enumerate(program.returns):
        for new, change in _variants(ret, options, n):
            yield Program(program.args, body, program.returns[:k] + (new,) + program.returns[k + 1:],
                          program.name), change


def _dead(program: Program, most: int = 2) -> str:
    """The statements dead-code elimination removes, as text (the first ``most`` of them)."""
    kept, i, gone = eliminate_dead_code(program, rename=False).body, 0, []
    for stmt in program.body:
        if i < len(kept) and stmt == kept[i]:
            i += 1
        else:
            gone.append(f"`{stmt.target} = {_short(stmt.value)}`")
    more = f" and {len(gone) - most} more" if len(gone) > most else ""
    return ", ".join(gone[:most]) + more if gone else "dead state returns"


def _short(expr: Expr, most: int = 40) -> str:
    text = format_expr(expr)
    return text if len(text) <= most else text[:most - 3] + "..."


def removals(program: Program) -> Iterator[tuple[Program, str]]:
    """Kind 1: each statement removed (later reads see the previous value)."""
    for i, stmt in enumerate(program.body):
        yield (Program(program.args, program.body[:i] + program.body[i + 1:], program.returns, program.name),
               f"remove `{stmt.target} = {_short(stmt.value)}`")


def replacements(program: Program) -> Iterator[tuple[Program, str]]:
    """Kind 2: each call of a library function replaced by one of its non-constant arguments (not operators:
    dropping a term or a factor is a statement removal's job)."""
    def options(e: Expr, _):
        if not isinstance(e, Call) or e.fn in OPERATORS:
            return []
        return [(a, f"{_short(e)} -> {_short(a)}") for a in dict.fromkeys(e.args) if not isinstance(a, Const)]
    return _edits(program, options)


def significant_digits(value: float) -> int:
    """The fewest significant digits that print ``value`` exactly (0.899: 3, 0.9: 1)."""
    for d in range(1, 18):
        if float(f"{value:.{d}g}") == value:
            return d
    return 17


def roundings(program: Program) -> Iterator[tuple[Program, str]]:
    """Kind 3: each constant rounded to fewer significant digits; all 1-digit candidates first, then 2, ..."""
    most = max((significant_digits(c.value) for c in program.constants()), default=1)
    for d in range(1, most):
        def options(e: Expr, _, d=d):
            if not isinstance(e, Const) or significant_digits(e.value) <= d:
                return []
            r = float(f"{e.value:.{d}g}")
            return [(Const(r), f"{format_expr(e)} -> {format_expr(Const(r))}")] if r != e.value else []
        yield from _edits(program, options)


def _definitions(program: Program) -> list[dict[str, tuple[Expr, int]]]:
    """For each statement index (and ``len(body)`` for the returns): name -> (its value, where it was assigned)
    for the names assigned earlier in the body."""
    out, env = [], {}
    for i, stmt in enumerate(program.body):
        out.append(dict(env))
        env[stmt.target] = (stmt.value, i)
    out.append(dict(env))
    return out


def _key(expr: Expr, where: int, defs: list[dict]) -> tuple:
    """What ``expr`` at statement ``where`` denotes: names resolved to the assignment they read."""
    if isinstance(expr, Var):
        binding = defs[where].get(expr.name)
        return ("var", expr.name, binding[1] if binding else -1)
    if isinstance(expr, Const):
        return ("const", expr.value)
    return ("call", expr.fn, tuple(_key(a, where, defs) for a in expr.args))


def _through(expr: Expr, where: int, defs: list[dict]) -> tuple[Expr, int]:
    """``expr`` with a name replaced by its definition (and the statement it was defined at), repeatedly."""
    while isinstance(expr, Var) and expr.name in defs[where]:
        expr, where = defs[where][expr.name]
    return expr, where


def rewrites(program: Program) -> Iterator[tuple[Program, str]]:
    """Kind 4: ``x / sqrt(x * x)``, ``x / sqrt(square(x))``, ``x / abs(x)`` -> ``sign(x)``."""
    defs = _definitions(program)

    def options(e: Expr, where: int):
        if not (isinstance(e, Call) and e.fn == "/"):
            return []
        x, d = e.args
        x_key = _key(x, where, defs)
        d, at = _through(d, where, defs)
        if not isinstance(d, Call):
            return []
        same = False
        if d.fn == "abs":
            same = _key(d.args[0], at, defs) == x_key
        elif d.fn == "sqrt":
            y, y_at = _through(d.args[0], at, defs)
            if isinstance(y, Call) and (y.fn == "square" or (y.fn == "*" and len(y.args) == 2)):
                same = all(_key(a, y_at, defs) == x_key for a in y.args)
        return [(Call("sign", (x,)), f"{_short(e)} -> sign({_short(x)})")] if same else []
    return _edits(program, options)


GENERATORS: dict[str, Callable[[Program], Iterator[tuple[Program, str]]]] = {
    "remove": removals, "replace": replacements, "round": roundings, "rewrite": rewrites}


def candidates(program: Program, kind: str) -> Iterator[tuple[Program, str]]:
    """The valid, dead-code-free, new programs of one kind of step, in the order they are tried."""
    seen = {str(program)}
    for candidate, change in GENERATORS[kind](program):
        try:
            check(candidate)
        except ProgramError:
            continue  # e.g. a removed statement whose name has no earlier value
        candidate = eliminate_dead_code(candidate)
        if str(candidate) not in seen:
            seen.add(str(candidate))
            yield candidate, change


# --- the search -----------------------------------------------------------------------------------


class CachedFitness:
    """A fitness function ``Program -> float`` that trains each program text once."""

    def __init__(self, evaluate_fn: Callable[[Sequence[Program]], Sequence]):
        self._evaluate, self._of = evaluate_fn, fitness_of
        self.cache: dict[str, float] = {}
        self.trained = self.hits = 0

    def __call__(self, program: Program) -> float:
        text = str(program)
        if text in self.cache:
            self.hits += 1
        else:
            self.trained += 1
            self.cache[text] = self._of(self._evaluate([program])[0])
        return self.cache[text]


def run(program: Program, fitness: Callable[[Program], float], tolerance: float, *,
        start_fitness: float | None = None, kinds: Sequence[str] = KINDS, simplify_timeout: float = 5.0,
        progress: Callable[[Step], None] | None = None) -> tuple[list[Step], list[tuple[str, str, float]]]:
    """The derivation loop (see the module docstring) with any fitness: (steps that held, refused candidates)."""
    start = fitness(program) if start_fitness is None else start_fitness
    floor = start - tolerance
    steps = [Step(0, "start", "start", program, start, "start")]
    refused: list[tuple[str, str, float]] = []
    tried: set[str] = set()  # candidates refused once are not trained again (the cache would answer anyway)

    def take(kind: str, candidate: Program, change: str, f: float, how: str) -> None:
        steps.append(Step(len(steps), kind, change, candidate, f, how))
        if progress:
            progress(steps[-1])

    trimmed = eliminate_dead_code(program)
    if trimmed != program:
        take("remove", trimmed, "remove dead code: " + _dead(program), start, "exact")
    while True:
        current = steps[-1]
        for kind in kinds:
            held = None
            for candidate, change in candidates(current.program, kind):
                if str(candidate) in tried:
                    continue
                if equivalent(current.program, candidate):
                    held = (candidate, change, current.fitness, "exact")
                    break
                f = fitness(candidate)
                if f >= floor:
                    held = (candidate, change, f, "trained")
                    break
                tried.add(str(candidate))
                refused.append((kind, change, f))
            if held is not None:
                take(kind, *held)
                break
        else:  # no step holds: simplify exactly, and go on from there if that is shorter (its constants may round)
            simplified = simplify(current.program, simplify_timeout)
            if (len(simplified.body), size(simplified)) >= (len(current.program.body), size(current.program)):
                break
            take("simplify", simplified, "simplified (SymPy)", current.fitness, "exact")
    return steps, refused


def derive(program: Program | str, config="quick", *, stage: int | str = 0, tolerance: float | None = None,
           noise_sets: int = NOISE_SETS, steps: int | None = None, backend="serial", validate: bool = False,
           progress: Callable[[Step], None] | None = None) -> Derivation:
    """Shorten ``program`` by steps that keep its fitness on ``config``'s stage ``stage``; see the module docstring.

    Args:
        program: a Program or its text.
        config: a search configuration (TOML file, name in ``search_spaces/``, dict or Config); its stage
            ``stage`` (index or name; default the search stage) gives tasks, seeds, steps and lr grid.
        tolerance: how far below the start's fitness a step may fall (default: :data:`NOISE_SIGMAS` times the
            paired noise, measured).
        noise_sets: further seed sets (beside the stage's) on which the paired noise is measured.
        steps: training steps per task, overriding the stage's (cheap checks).
        backend: ``"serial"`` or a campaign backend ``backend(tasks, seeds, steps, grid, functions) -> evaluate_fn``.
        validate: also train the start and the derived program on the config's validation tasks, as the
            campaign does (:func:`symopt.campaign.campaign.validator`).
    """
    program = parse(program) if isinstance(program, str) else program
    check(program)
    cfg = load(config)
    c = cfg.campaign
    names = [stage_name(c, i) for i in range(len(c.stages))]
    if isinstance(stage, str):
        if stage not in names:
            raise ValueError(f"stage {stage!r}: not a stage of {cfg.name!r}; stages: {', '.join(names)}")
        stage = names.index(stage)
    if not 0 <= stage < len(c.stages):
        raise ValueError(f"stage {stage}: {cfg.name!r} has stages 0 to {len(c.stages) - 1} ({', '.join(names)})")
    if steps is not None and not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps {steps}: give 1 to {MAX_STEPS:,} training steps per task (a stage's limit)")
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance {tolerance}: give a finite number >= 0")
    if not (isinstance(noise_sets, int) and 0 <= noise_sets <= MAX_NOISE_SETS):
        raise ValueError(f"noise_sets {noise_sets}: give 0 to {MAX_NOISE_SETS} further seed sets")
    st = c.stages[stage]
    make = resolve_backend(backend)
    seeds = tuple(st.seeds or c.seeds)
    n_steps = steps or st.steps or None
    # its steps may call any function (SymPy writes x**-1 as reciprocal, a power as cube or exp2, ...)
    functions = None
    fitness = CachedFitness(make(st.tasks, seeds, n_steps, st.grid, functions))
    start = fitness(program)
    noise: list[float] = []
    on_sets: list[float] = []
    if tolerance is None:  # the paired noise: the start against itself perturbed, on each seed set
        twin = perturbed(program)
        pairs = [(start, fitness(twin))]
        for k in range(1, noise_sets + 1):
            other = make(st.tasks, tuple(s + NOISE_SEED_OFFSET * k for s in seeds), n_steps, st.grid, functions)
            pairs.append(tuple(fitness_of(r) for r in other([program, twin])))
        if not all(math.isfinite(f) for pair in pairs for f in pair):
            raise ValueError("the start program diverges on some seeds, so the noise of its fitness cannot be "
                             "measured; give a tolerance")
        on_sets = [a for a, _ in pairs]
        noise = [b - a for a, b in pairs]
        tolerance = NOISE_SIGMAS * noise_sd(noise)
    held, refused = run(program, fitness, tolerance, start_fitness=start, simplify_timeout=c.simplify_timeout,
                        progress=progress)
    trained = fitness.trained + (2 * noise_sets if noise else 0)  # the noise's trainings on the further seed sets
    derivation = Derivation(held, tolerance, "paired noise" if noise else "given", noise, refused, trained,
                            fitness.hits, names[stage], on_sets)
    if validate:
        if not c.validation:
            raise ValueError(f"{cfg.name!r} has no validation tasks (campaign.validation); drop validate")

        scores = validator(c, make, functions)([program, derivation.derived])
        derivation.validation = {"tasks": list(c.validation), "start": fitness_of(scores[0]),
                                 "derived": fitness_of(scores[1])}
    return derivation
