"""Search configuration: a search space and campaign defaults, read from TOML into frozen dataclasses.

    config = load("search_spaces/quick.toml")      # or load({...}) from a dict
    config.space.functions, config.space.arguments, config.campaign.population

A file has two tables, ``[space]`` (what programs can be: functions, arguments,
length, constants, mutation weights) and ``[campaign]`` (how the search runs:
start program, population, tournament, budget, funnel stages, validation
tasks, islands, restarts). Every key has a default, so a file names only what
it changes. A bad value or an unknown key raises a ValueError that names the
file, the key as a dotted path (``campaign.stages[1].promote``) and what is
allowed.
"""

from __future__ import annotations

import dataclasses
import pathlib
import tomllib
import typing
from typing import Any, Mapping

import proxy_tasks
import search_spaces
from proxy_tasks.imported import find
from symopt.evaluation.fitness import BEST_SCORE, DEFAULT_FACTORS, DEFAULT_GATE, WORST_FITNESS, Grid
from symopt.programs.checker import check
from symopt.programs.errors import ProgramError
from symopt.programs.functions import FUNCTIONS, HERO_FUNCTIONS
from symopt.programs.hints import did_you_mean
from symopt.programs.parser import MAX_STATEMENTS, read_text
from symopt.programs.program import Program, Var
from symopt.config.schema import Range, build, check_values, clip, error, field, key_of, keyed
from symopt.config.start import HERO_ADAMW, start_program

SPACES_DIR = pathlib.Path(search_spaces.__file__).parent


COUNT = 10**9
"""Upper bound of the keys that count trainings or steps (patience, intervals): far past any campaign."""
SEED = Range(0, 2**32 - 1)
POSITIVE = Range(0, 1e10, above=True)
WEIGHT = Range(0, 1e6)
PROBABILITY = Range(0, 1)
MAX_STEPS = 10**6
"""Most training steps per task a stage (or ``derive --steps``, ``compare --steps``) may ask for."""
MAX_ITEMS = 100
"""Most seeds or learning-rate factors in one list: each multiplies every training's cost."""
SECONDS = Range(0, 3600, above=True)
"""A SymPy time limit in seconds (``campaign.simplify_timeout``, ``symopt simplify --timeout``)."""


@dataclasses.dataclass(frozen=True)
class Constants:
    """How new constants are drawn and how constants mutate (hero: N(0, 1), times 2^N(0, 1))."""

    init: str = field("normal", "distribution of new constants", choices=("normal", "log-uniform"))
    scale: float = field(1.0, "standard deviation of 'normal' new constants", range=POSITIVE)
    low: float = field(1e-3, "smallest magnitude of 'log-uniform' new constants", range=POSITIVE)
    high: float = field(1.0, "largest magnitude of 'log-uniform' new constants", range=POSITIVE)
    negative: float = field(0.5, "chance that a 'log-uniform' new constant is negative", range=PROBABILITY)
    probability: float = field(0.2, "chance that an argument of an inserted call is a new constant", range=PROBABILITY)
    mutation_scale: float = field(1.0, "a mutated constant is multiplied by 2^(mutation_scale * N(0, 1))",
                                   range=Range(0, 100, above=True))
    max_abs: float = field(1e10, "constants are clipped to [-max_abs, max_abs]",
                            range=Range(0, 1e30, above=True))


GRAFT_FUNCTIONS = ("+", "-", "*", "/", "is_matrix", "norm")
"""What the graft mutation writes beside its direction ``f``: the space must hold them all."""


@dataclasses.dataclass(frozen=True)
class MutationWeights:
    """Relative weights of the mutation operators, and how often to retry."""

    insert: float = field(1.0, "weight of inserting a statement", range=WEIGHT)
    delete: float = field(1.0, "weight of deleting a statement", range=WEIGHT)
    modify: float = field(1.0, "weight of modifying a statement", range=WEIGHT)
    constant: float = field(0.0, "weight of mutating one constant alone (the constants-only control: "
                                  "insert = delete = modify = 0)", range=WEIGHT)
    accumulate: float = field(0.0, "weight of inserting a running average `s = interpolate(s, x, c)` of a "
                                    "name x into a state slot s that a later read of x then reads instead",
                               range=WEIGHT)
    wrap: float = field(0.0, "weight of wrapping a read of a name x in a one-argument function of the space, "
                              "f(x) read in its place (orthogonalize(m): Muon's direction from momentum)",
                         range=WEIGHT)
    graft: float = field(0.0, "weight of grafting: on matrix leaves, the returned update u takes the direction of "
                              "f(u), a one-argument function of the space, at the norm of u (f = orthogonalize: "
                              "Muon's direction at the rule's own step size)", range=WEIGHT)
    max_tries: int = field(50, "mutation steps before giving up on a child that is valid and behaves "
                                "differently from its parent", range=Range(1, 10_000))


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """What candidate programs can be."""

    functions: tuple[str, ...] = field(HERO_FUNCTIONS, "library functions (or \"hero\" for all 45)")
    arguments: tuple[str, ...] = field(("w", "g", "m", "v", "lr"),
                                        "the program's arguments: w, g, lr, t by role, others are state slots")
    max_length: int = field(30, "most statements a program may have (insertion stops there)",
                             range=Range(1, MAX_STATEMENTS))
    constants: Constants = field(Constants(), "constants")
    mutation: MutationWeights = field(MutationWeights(), "mutation operators")

    @property
    def state_args(self) -> tuple[str, ...]:
        return Program(self.arguments, (), ()).state_args


@dataclasses.dataclass(frozen=True)
class Stage:
    """One funnel stage: the tasks a candidate is scored on there, and how many reach it."""

    name: str = field("", "stage name (default: stage1, stage2, ...)")
    tasks: tuple[str, ...] = field((), "proxy tasks of this stage", nonempty=True, tasks=True)
    promote: int = field(10, "how many leaders of the previous stage are scored here (ignored for the first)",
                          range=Range(1, 100_000))
    steps: int = field(0, "training steps per task (0: each task's default)", range=Range(0, MAX_STEPS))
    seeds: tuple[int, ...] = field((), "seeds (empty: campaign.seeds)", range=SEED, max_items=MAX_ITEMS)
    lr_factors: tuple[float, ...] = field(DEFAULT_FACTORS, "learning-rate factors (of each task's AdamW peak) "
                                           "at which every candidate and AdamW train; each scores at its best",
                                           range=Range(0, 1000, above=True), max_items=MAX_ITEMS)
    hurdle: float = field(WORST_FITNESS, "fitness on the first seed below which the other seeds are not trained "
                                          f"({WORST_FITNESS} or less: no hurdle)", range=Range(-1e6, 1e6))
    gates: tuple[str, ...] = field((), "tasks of this stage that only gate the fitness: left out of its mean, "
                                        "a score below `gate` on one fails the candidate", tasks=True)
    gate: float = field(DEFAULT_GATE, "the lowest passing score of a gate task (-1: no progress, 0: AdamW's)",
                         range=Range(WORST_FITNESS, BEST_SCORE))

    @property
    def grid(self) -> Grid:
        return Grid(self.lr_factors, None if self.hurdle <= WORST_FITNESS else self.hurdle, self.gates, self.gate)


@dataclasses.dataclass(frozen=True)
class Restart:
    """When and from where an island's population is started again."""

    patience: int = field(0, "evaluations without a new best before an island restarts (0: never)",
                         range=Range(0, COUNT))
    source: str = field("alternate", "restart from the start program, the best so far, or alternate",
                         choices=("start", "best", "alternate"), key="from")


@dataclasses.dataclass(frozen=True)
class CampaignConfig:
    """How a search runs; everything can be overridden per call of :func:`symopt.campaign.search`."""

    start: str = field(HERO_ADAMW, "start program: a baseline name or program text (def train(...): ...)")
    population: int = field(100, "population size of each island", range=Range(1, 100_000))
    tournament: int = field(10, "tournament size (at most the population)", range=Range(1, 100_000))
    budget: int = field(2000, "candidates trained on the first stage (cache hits are free)",
                        range=Range(1, 10**8))
    max_generated: int = field(0, "stop after this many mutation steps (0: 100 x budget)",
                               range=Range(0, 10**10))
    seeds: tuple[int, ...] = field((0,), "training seeds for each task", nonempty=True,
                                    range=SEED, max_items=MAX_ITEMS)
    seed: int = field(0, "seed of the search itself (mutation, selection)", range=SEED)
    batch: int = field(1, "candidates evaluated together (1: strictly serial evolution)",
                       range=Range(1, 10_000))
    islands: int = field(1, "independent populations", range=Range(1, 1000))
    migration_interval: int = field(0, "evaluations between migrations (0: never)",
                                    range=Range(0, COUNT))
    migrants: int = field(1, "best individuals copied to the next island at a migration (at most "
                                  "the population)", range=Range(0, 100_000))
    restart: Restart = field(Restart(), "restarts")
    stages: tuple[Stage, ...] = field((), "funnel stages; the first is the search fitness", nonempty=True)
    validation: tuple[str, ...] = field((), "held-out tasks that rank the hall of fame", tasks=True)
    hall_of_fame: int = field(5, "programs kept and scored on the validation tasks",
                              range=Range(1, 1000))
    check_interval: int = field(0, "trainings between funnel checks during the search: the leaders so far go "
                                    "through the later stages and validation (0: only at the end)",
                                range=Range(0, COUNT))
    simplify_timeout: float = field(5.0, "seconds of SymPy per hall-of-fame program", range=SECONDS)


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole search configuration: the space and the campaign."""

    name: str = field("search", "name of the configuration (and of its default run directory, runs/NAME): "
                                 "letters, digits, _ . -, not starting with . or -", plain=True)
    description: str = field("", "one line about it")
    space: SearchSpace = field(SearchSpace(), "space")
    campaign: CampaignConfig = field(CampaignConfig(), "campaign")
    source: str = dataclasses.field(default="<dict>", compare=False, metadata={"internal": True})

    def replace_campaign(self, **changes) -> "Config":
        """A copy with some campaign values changed (checked like the file's)."""
        if not changes:
            return self
        campaign = dataclasses.replace(self.campaign, **changes)
        source = f"{self.source} (overridden)"
        check_values(campaign, "campaign", source)
        _check_campaign(campaign, source, self.space)
        return dataclasses.replace(self, campaign=campaign)


# --- loading ------------------------------------------------------------------------------


def load(config: "str | pathlib.Path | Mapping[str, Any] | Config") -> Config:
    """Read a configuration from a TOML file, a dict, or a name in ``search_spaces/``.

    Raises:
        ValueError: naming the file, the dotted key and what is allowed.
    """
    if isinstance(config, Config):
        return config
    if isinstance(config, Mapping):
        return from_dict(config, "<dict>")
    path = pathlib.Path(config)
    if not path.exists() and not path.suffix and (SPACES_DIR / f"{path}.toml").exists():
        path = SPACES_DIR / f"{path}.toml"
    try:
        text = read_text(path)
    except OSError as e:
        known = ", ".join(sorted(p.stem for p in SPACES_DIR.glob("*.toml")))
        raise ValueError(f"{path}: cannot read the search configuration ({e.strerror}); "
                         f"give a TOML file or one of: {known}") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from None
    except RecursionError:  # arrays or inline tables nested thousands deep
        raise ValueError(f"{path}: not valid TOML: arrays or tables nested too deeply; a configuration nests "
                         "a few levels") from None
    return from_dict(table, str(path))


def from_dict(table: Mapping[str, Any], source: str = "<dict>") -> Config:
    """Build and check a :class:`Config` from a TOML-shaped dict; ``source`` names it in errors."""
    config = build(Config, table, "", source)
    config = dataclasses.replace(config, source=source)
    _check_space(config.space, source)
    _check_campaign(config.campaign, source, config.space)
    return config


def from_fields(data: Mapping[str, Any], source: str = "<dict>") -> Config:
    """:func:`from_dict` of a dict keyed by field names (``dataclasses.asdict``, a run's config.json) rather
    than by the TOML keys where they differ (``restart.source`` is ``restart.from``)."""
    return from_dict(keyed(Config, data), source)


def ranges_table() -> str:
    """Every numeric key with its allowed range, default and meaning, as a Markdown table (docs/configuration.md's
    "Configuration ranges" is this table; a test keeps the two equal)."""
    rows = ["| key | allowed | default | what |", "|---|---|---|---|"]

    def walk(cls, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint, path = hints[f.name], prefix + key_of(f)
            item = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else hint
            if dataclasses.is_dataclass(item):
                walk(item, path + ("[]." if item is not hint else "."))
            elif item in (int, float):
                show = (lambda x: f"{x:g}") if item is float else str
                default = show(f.default) if item is hint else f"[{', '.join(map(show, f.default))}]"
                allowed = f.metadata["range"].describe(item is int)
                most = f.metadata.get("max_items")
                each = "" if item is hint else f" (each{f'; at most {most}' if most else ''})"
                rows.append(f"| `{path}` | {allowed}{each} | {default} | "
                            f"{f.metadata['doc']} |")

    walk(Config, "")
    return "\n".join(rows)


# --- cross-field checks -----------------------------------------------------------------


def _check_space(space: SearchSpace, source: str) -> None:
    if not space.functions:
        raise error(source, "space.functions", "must name at least one function; allowed: \"hero\" or a list of "
                     f"library functions: {', '.join(HERO_FUNCTIONS)}")
    for i, name in enumerate(space.functions):
        if name not in FUNCTIONS:
            hint = did_you_mean(name, FUNCTIONS)
            raise error(source, f"space.functions[{i}]", f"unknown function {name!r}{hint}; allowed: "
                         f"{', '.join(FUNCTIONS)}")
    if len(set(space.functions)) != len(space.functions):
        dup = next(n for n in space.functions if space.functions.count(n) > 1)
        raise error(source, "space.functions", f"{dup!r} appears twice")
    if not any(FUNCTIONS[n].arity > 0 for n in space.functions):
        raise error(source, "space.functions", "needs at least one function that takes arguments")
    try:
        check(Program(space.arguments, (), (Var(space.arguments[0]),) * (1 + len(space.state_args)))
              if space.arguments else Program((), (), ()))
    except ProgramError as e:
        raise error(source, "space.arguments", f"{e.reason}; allowed: distinct names, at most one per role "
                     "(w/weight/params, g/grad/gradient, lr, t/step), the others are state slots") from None
    if not any(Program(space.arguments, (), ()).role(a) == "grad" for a in space.arguments):
        raise error(source, "space.arguments", "needs the gradient argument (g, grad or gradient)")
    c = space.constants
    if c.low > c.high:
        raise error(source, "space.constants.low", f"{c.low} is above space.constants.high = {c.high}")
    m = space.mutation
    if m.insert + m.delete + m.modify + m.constant + m.accumulate + m.wrap + m.graft <= 0:
        raise error(source, "space.mutation",
                     "the weights insert, delete, modify, constant, accumulate, wrap and graft must not all be 0")
    if m.accumulate > 0 and not space.state_args:
        raise error(source, "space.mutation.accumulate",
                     "needs a state slot: add one to space.arguments (m, say) or set the weight to 0")
    if m.accumulate > 0 and "interpolate" not in space.functions:
        raise error(source, "space.mutation.accumulate",
                     "writes interpolate(s, x, c): add interpolate to space.functions or set the weight to 0")
    missing = [f for f in GRAFT_FUNCTIONS if f not in space.functions]
    if m.graft > 0 and missing:
        raise error(source, "space.mutation.graft", f"writes u + is_matrix(u) * (d * (norm(u) / norm(d)) - u): add "
                    f"{', '.join(missing)} to space.functions or set the weight to 0")


def _check_campaign(campaign: CampaignConfig, source: str, space: SearchSpace) -> None:
    if campaign.tournament > campaign.population:
        raise error(source, "campaign.tournament", f"{campaign.tournament} is larger than campaign.population = "
                     f"{campaign.population}; allowed: 1 .. population")
    if campaign.migrants > campaign.population:
        raise error(source, "campaign.migrants", f"{campaign.migrants} is larger than campaign.population = "
                     f"{campaign.population}; allowed: 0 .. population")
    if not campaign.stages:
        raise error(source, "campaign.stages", "needs at least one stage ([[campaign.stages]] with tasks = [...])")
    known = known_tasks()
    for i, stage in enumerate(campaign.stages):
        if not stage.tasks:
            raise error(source, f"campaign.stages[{i}].tasks", "must name at least one task")
        for j, gate in enumerate(stage.gates):
            if gate not in stage.tasks:
                raise error(source, f"campaign.stages[{i}].gates[{j}]", f"{gate!r} is not one of the stage's tasks "
                             f"{list(stage.tasks)}; a gate is trained as one of them")
        if set(stage.tasks) <= set(stage.gates):
            raise error(source, f"campaign.stages[{i}].gates", "gates every task: at least one task must count "
                         "towards the fitness")
        try:
            stage.grid
        except ValueError as e:
            raise error(source, f"campaign.stages[{i}].lr_factors", str(e)) from None
        _check_tasks(stage.tasks, f"campaign.stages[{i}].tasks", source, known)
    _check_tasks(campaign.validation, "campaign.validation", source, known)
    names = [stage_name(campaign, i) for i in range(len(campaign.stages))]
    if len(set(names)) != len(names):
        raise error(source, "campaign.stages", f"stage names must differ, got {names}")
    try:
        start_program(campaign.start, space)
    except ValueError as e:
        raise error(source, "campaign.start", f"{e}; allowed: a baseline name or program text") from None


def _check_tasks(tasks, path: str, source: str, known: list[str]) -> None:
    for j, task in enumerate(tasks):
        if proxy_tasks.is_import_path(task):
            try:  # the module and attribute exist; trained and checked by check_tasks, after Ray starts
                find(task)
            except ValueError as e:
                raise error(source, f"{path}[{j}]", str(e)) from None
        elif task not in known:
            hint = did_you_mean(task, known, n=1) if len(task) <= 100 else ""
            raise error(source, f"{path}[{j}]", f"unknown task {clip(repr(task))}{hint}; allowed: "
                         f"{', '.join(known)}, or a task of your own by import path \"package.module:attr\"")


def check_tasks(config: Config) -> None:
    """Build every task the configuration names by import path and check that it trains (a scalar loss, an
    AdamW reference that lowers the eval loss: :func:`proxy_tasks.check`); before any worker starts.

    Raises:
        ValueError: naming the file, the field and the task's problem.
    """
    for path, tasks in _task_fields(config.campaign):
        for j, task in enumerate(tasks):
            if proxy_tasks.is_import_path(task):
                try:
                    proxy_tasks.require_trainable(task)
                except ValueError as e:
                    raise error(config.source, f"{path}[{j}]", str(e)) from None


def task_names(config: Config) -> list[str]:
    """Every task the configuration names (its stages' and validation's), each once, in order."""
    return list(dict.fromkeys(t for _, tasks in _task_fields(config.campaign) for t in tasks))


def _task_fields(c: CampaignConfig) -> list[tuple[str, tuple[str, ...]]]:
    return [(f"campaign.stages[{i}].tasks", st.tasks) for i, st in enumerate(c.stages)] + \
        [("campaign.validation", c.validation)]


def known_tasks() -> list[str]:
    """Task names a configuration may use: the registered proxy tasks, the NumPy toy tasks included."""
    return proxy_tasks.names()


def stage_name(campaign: CampaignConfig, index: int) -> str:
    """The name of funnel stage ``index`` (its ``name``, else ``stage1``, ``stage2``, ...)."""
    return campaign.stages[index].name or f"stage{index + 1}"
