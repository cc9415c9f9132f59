"""``symopt bench fuzz``: generated program texts through parse, check, lowering and simplify.

Every text is data: the only acceptable failure is a :class:`ProgramError` from
:func:`~symopt.programs.parse` (which checks the program too); a text that parses
must then lower (:func:`~symopt.evaluation.lowering.lower`, its packed arrays and
its host scalars over a few steps), print and parse back equal, and simplify
(:func:`~symopt.symbolic.simplify.simplify`) to a program that prints and parses
back equal, without raising anything. Any other exception is a *crash*, reported
with the stage, the error and the text.

The texts come from a seeded generator, in five kinds (``--count`` in all, in
turn): ``soup`` (tokens of Python and of the language in any order), ``shaped``
(``def train(...)`` around token soup), ``edited`` (baseline programs with
characters, tokens and lines deleted, inserted, replaced, swapped, repeated),
``mutated`` (baselines after 1 to 20 of the search's own mutation operators over
the whole library, one step in ten kept even when it leaves the program invalid)
and ``built`` (:func:`symopt.programs.generate.random_program`, with one constant
in five replaced by an extreme of float64, 5e-324 to 1.8e308). About one in five
texts carries a payload (``__import__('os').system(...)``, ``open(...)``, ``exec(...)``,
dunder walks) that would touch a sentinel file if it ever ran.

*No code is run*: an audit hook (``sys.addaudithook``) counts, while the texts
are processed, every event that runs a code object or reaches the system
(``exec`` for exec/eval, ``os.system``, ``subprocess.Popen``, ``os.exec``,
``os.posix_spawn``, ``os.fork``, ``socket.connect``, ``ctypes.dlopen``, unpickling,
files opened for writing); the hook is checked to see an ``exec`` before the run,
and the sentinel file must not exist after it. Two kinds of ``exec`` run library
code, not a program, and are counted apart: a module's own code while it is
imported (SymPy loads some modules lazily; one of them sympifies unit names as
it loads), and strings SymPy writes and evaluates itself: its monomial
arithmetic, built from templates, and ``nsimplify``, which reads back a number
that mpmath wrote as a formula (``LIBRARY_STRINGS``). A hook cannot be removed, so run this in a process of its
own (the command does). Exit status 1 on any crash, round-trip failure or event.

Not part of the test suite (tests/programs/test_parser_fuzz.py is its quick, hypothesis-driven
sibling); it takes minutes, mostly SymPy's.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
import traceback

import numpy as np

DEFAULT_COUNT = 10_000
DEFAULT_TIMEOUT = 1.0
KINDS = ("soup", "shaped", "edited", "mutated", "built")

TOKENS = [
    "def", "train", "(", ")", ":", "\n", "\n  ", "\n    ", "  ", " ", "\t", ",", "=", "return", "return ",
    "+", "-", "*", "/", "**", "//", "%", "@", "~", "+=", ".", "[", "]", "{", "}", "#", "\\", ";",
    "g", "w", "m", "v", "lr", "t", "x", "update", "__x", "__import__", "os", "'s'", "b''", "None", "True",
    "1j", "0.1", "1e-8", "-1", "2", "1e400", "0x10", "1_0", "...", "lambda", "import", "for", "in", "if",
    "else", "while", "yield", "await", "global", "del", "pass", "class", "@", ":=",
    "sqrt", "square", "interpolate", "norm", "dot", "global_norm", "clip_by_global_norm", "sign",
    "get_pi", "power", "max", "cbrt", "invert", "sqr",
]
"""Tokens of token soup: Python's syntax, the language's names, and near misses (tests/programs/test_parser_fuzz.py
draws them too)."""

INSERTS = TOKENS + list("()=,:+-*/.\n 0123456789e")
"""What an ``insert`` edit inserts."""
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d*)?(?:e[+-]?\d+)?")
"""A numeric literal in a printed program."""
EXTREMES = ("5e-324", "2.5e-310", "1.7976931348623157e+308", "1e+300", "0.0", "1e-300")
"""Constants at the ends of float64, put in place of some of a built program's constants."""
EDITS = ("delete", "insert", "replace", "swap_lines", "duplicate_token", "duplicate_line")


def edit(text: str, op: tuple) -> str:
    """One edit ``(kind, a, b)`` of a text: ``a`` picks the place (modulo the length), ``b`` what (see EDITS)."""
    kind, a, b = op
    if not text:
        return text
    i = a % len(text)
    if kind == "delete":
        return text[:i] + text[i + b:]
    if kind == "insert":
        return text[:i] + b + text[i:]
    if kind == "replace":
        return text[:i] + b + text[i + 1:]
    lines = text.split("\n")
    if kind == "swap_lines":
        j, k = a % len(lines), b % len(lines)
        lines[j], lines[k] = lines[k], lines[j]
        return "\n".join(lines)
    if kind == "duplicate_line":
        j = a % len(lines)
        return "\n".join(lines[:j + 1] + lines[j:])
    tokens = text.split(" ")
    j = a % len(tokens)
    return " ".join(tokens[:j + 1] + tokens[j:])


# -- generating texts -------------------------------------------------------------------------------


def _payloads(sentinel: str) -> list[str]:
    """Expressions that would create ``sentinel`` (or run code) if a program's text were ever executed."""
    s = repr(sentinel)
    return [f"__import__('os').system('touch ' + {s})", f"open({s}, 'w')", f"exec('open({s}, \"w\")')",
            f"eval(\"open({s}, 'w')\")", "().__class__.__bases__[0].__subclasses__()",
            f"__builtins__.open({s}, 'w')", f"getattr(__import__('os'), 'system')('touch ' + {s})",
            f"(lambda: open({s}, 'w'))()", "breakpoint()", f"compile('x', {s}, 'exec')"]


class Generator:
    """Program texts of the five kinds, reproducible from a seed."""

    def __init__(self, seed: int, sentinel: str):
        from symopt.programs import baselines

        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.payloads = _payloads(sentinel)
        self.seeds = [baselines.get(n) for n in baselines.names() if baselines.is_program(n)]
        self.seed_texts = [str(p) for p in self.seeds]
        self._space = None

    def text(self, kind: str) -> str:
        text = getattr(self, f"_{kind}")()
        if self.rng.random() < 0.2:
            text = self._with_payload(text)
        return text

    def _soup(self) -> str:
        return "".join(self.rng.choice(TOKENS) for _ in range(self.rng.randrange(60)))

    def _shaped(self) -> str:
        r = self.rng
        args = ", ".join(r.choice(["g", "w", "m", "lr", "t", "v", "x"]) for _ in range(r.randrange(5)))
        lines = ["x = " + " ".join(r.choice(TOKENS[16:]) for _ in range(r.randrange(9))) for _ in range(r.randrange(5))]
        ret = ", ".join(r.choice(["g", "m", "x", "v", "(g)", "g, m", "1.0"]) for _ in range(1 + r.randrange(3)))
        return f"def train({args}):\n" + "".join(f"  {line}\n" for line in lines) + f"  return {ret}\n"

    def _edited(self) -> str:
        r = self.rng
        text = r.choice(self.seed_texts)
        for _ in range(1 + r.randrange(4)):
            kind = r.choice(EDITS)
            a = r.randrange(10**6)
            b = {"delete": r.randrange(1, 6), "insert": r.choice(INSERTS),
                 "replace": chr(r.choice([r.randrange(32, 127), r.randrange(0x80, 0x3000)])),
                 "swap_lines": r.randrange(10**6)}.get(kind)
            text = edit(text, (kind, a, b))
        return text

    def _mutated(self) -> str:
        from symopt.evolve.mutation import mutate_once, why_invalid

        if self._space is None:
            from symopt.config.space import load

            hero = load("hero").space
            from symopt.programs.generate import CALLABLE

            self._space = dataclasses.replace(hero, functions=CALLABLE, max_length=40)
        program = self.rng.choice(self.seeds)
        for _ in range(1 + self.rng.randrange(20)):
            _, child = mutate_once(program, self._space, self.np_rng)
            if child is not None and (why_invalid(child, self._space) is None or self.rng.random() < 0.1):
                program = child  # mostly valid steps, as the search takes them; now and then an invalid one
        return str(program)

    def _built(self) -> str:
        from symopt.programs.generate import random_program

        text = str(random_program(lambda n: self.rng.randrange(n), max_statements=8, max_depth=4))
        return NUMBER.sub(lambda m: self.rng.choice(EXTREMES) if self.rng.random() < 0.2 else m.group(0), text)

    def _with_payload(self, text: str) -> str:
        payload = self.rng.choice(self.payloads)
        lines = text.split("\n")
        i = self.rng.randrange(len(lines))
        return "\n".join(lines[:i] + [f"    x = {payload}"] + lines[i:])


# -- watching for code that runs ----------------------------------------------------------------------

WATCHED = ("exec", "os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
           "os.forkpty", "pty.spawn", "socket.connect", "ctypes.dlopen", "pickle.find_class", "marshal.loads",
           "builtins.input", "builtins.breakpoint")
IMPORTING = "<frozen importlib."
LIBRARY_STRINGS = {
    ("sympy/polys/monomials.py", "_build"): "SymPy's monomial arithmetic, built from its own templates",
    ("sympy/simplify/simplify.py", "nsimplify_real"): "SymPy's nsimplify, reading back a number that mpmath.identify "
                                                      "wrote as a formula ('(9/10)')",
}
"""(file, function) on the stack of an ``exec`` of a string that the library wrote itself, not a program's text."""


def _not_program_code(frame) -> str | None:
    """Why an ``exec``/``marshal.loads`` asked for by ``frame`` runs library code, not a program (None: it may not)."""
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(IMPORTING):
            return "a module's own code, run while it is imported"
        for (path, function), why in LIBRARY_STRINGS.items():
            if code.co_name == function and code.co_filename.endswith(path):
                return why
        frame = frame.f_back
    return None


class Watch:
    """Counts audit events that run code or reach the system while ``armed`` (see the module docstring)."""

    def __init__(self):
        self.armed = False
        self.events: collections.Counter = collections.Counter()
        self.allowed: collections.Counter = collections.Counter()
        self.examples: dict[str, str] = {}
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args) -> None:
        if not self.armed:
            return
        if event == "open":  # (path, mode, flags): mode for open(), flags for os.open()
            mode, flags = (tuple(args) + (None, None))[1:3]
            writes = (any(c in mode for c in "wax+") if isinstance(mode, str)
                      else bool((flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)))
            if not writes:
                return
        elif event not in WATCHED:
            return
        frame = sys._getframe(1)  # the Python code that asked for it
        why = _not_program_code(frame) if event in ("exec", "marshal.loads") else None
        if why:
            self.allowed[why] += 1
            return
        self.events[event] += 1
        self.examples.setdefault(event, f"{repr(args)[:200]} from {frame.f_code.co_filename}")

    def calibrate(self) -> bool:
        """Whether the hook sees a deliberate ``exec`` (so that seeing none later means something)."""
        self.armed = True
        try:
            exec("pass", {})  # noqa: S102 - the one deliberate exec: the hook must count it
        finally:
            self.armed = False
        seen = self.events["exec"] >= 1
        self.events.clear()
        self.allowed.clear()
        self.examples.clear()
        return seen


# -- running ------------------------------------------------------------------------------------------


def process(text: str, timeout: float) -> tuple[str, str | None]:
    """(the last stage reached, the crash or round-trip failure there, or None) for one text."""
    from symopt.evaluation.lowering import lower
    from symopt.evaluation.packing import pack, scalars
    from symopt.programs import ProgramError, parse
    from symopt.symbolic.simplify import simplify

    stage = "parse"
    try:
        program = parse(text)
    except ProgramError:
        return "rejected", None
    except Exception as e:  # noqa: BLE001 - the crashes being counted
        return stage, _describe(e)
    try:
        stage = "print"
        if parse(str(program)) != program:
            return stage, "RoundTrip: parse(str(p)) != p"
        stage = "lower"
        low = lower(program)
        pack([low], low.bucket)
        scalars([low], low.bucket, 1e-3, 3)
        stage = "simplify"
        simple = simplify(program, timeout=timeout)
        if parse(str(simple)) != simple:
            return stage, f"RoundTrip: the simplified program does not print and parse back equal:\n{simple}"
    except Exception as e:  # noqa: BLE001 - after parsing, any exception is a crash (ProgramError included)
        return stage, _describe(e)
    return "simplified", None


def _describe(e: BaseException) -> str:
    where = traceback.extract_tb(e.__traceback__)[-1]
    return f"{type(e).__name__}: {str(e)[:300]} (at {os.path.basename(where.filename)}:{where.lineno})"


def run(count: int = DEFAULT_COUNT, seed: int = 0, timeout: float = DEFAULT_TIMEOUT, progress=None) -> dict:
    """Fuzz ``count`` texts; returns the figures and the reproducers (see the module docstring)."""
    from symopt.programs import parse
    from symopt.symbolic.simplify import simplify

    workdir = tempfile.mkdtemp(prefix="symopt-fuzz-")
    sentinel = os.path.join(workdir, "ran")
    gen = Generator(seed, sentinel)
    watch = Watch()
    calibrated = watch.calibrate()
    simplify(parse(gen.seed_texts[0]), timeout=timeout)  # imports and SymPy's caches before the watch is armed
    outcomes: dict[str, collections.Counter] = {k: collections.Counter() for k in KINDS}
    failures: list[dict] = []
    t0 = time.perf_counter()
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        text = gen.text(kind)
        watch.armed = True
        try:
            stage, failure = process(text, timeout)
        finally:
            watch.armed = False
        outcomes[kind][stage if failure is None else "failed"] += 1
        if failure is not None:
            failures.append({"index": i, "kind": kind, "stage": stage, "error": failure, "text": text})
        if progress is not None:
            progress(i + 1, count, len(failures))
    seconds = time.perf_counter() - t0
    ran = os.path.exists(sentinel)
    shutil.rmtree(workdir, ignore_errors=True)
    crashes = [f for f in failures if not f["error"].startswith("RoundTrip")]
    return {"count": count, "seed": seed, "simplify_timeout": timeout, "seconds": seconds,
            "outcomes": {k: dict(v) for k, v in outcomes.items()},
            "rejected": sum(v["rejected"] for v in outcomes.values()),
            "simplified": sum(v["simplified"] for v in outcomes.values()),
            "crashes": len(crashes), "round_trip_failures": len(failures) - len(crashes),
            "crashes_by_stage": dict(collections.Counter(f["stage"] for f in crashes)),
            "hook_calibrated": calibrated, "code_events": dict(watch.events), "code_event_examples": watch.examples,
            "allowed_events": dict(watch.allowed),
            "sentinel_created": ran, "failures": failures}


def report(r: dict, show: int = 5) -> str:
    """The figures, and up to ``show`` reproducers per distinct error."""
    lines = [f"{r['count']:,} texts (seed {r['seed']}, simplify limit {r['simplify_timeout']} s) in "
             f"{r['seconds']:.0f} s: {r['rejected']:,} rejected with a ProgramError, {r['simplified']:,} parsed, "
             f"lowered and simplified",
             f"crashes other than ProgramError: {r['crashes']}"
             + (f" ({', '.join(f'{k}: {v}' for k, v in r['crashes_by_stage'].items())})" if r["crashes"] else ""),
             f"round-trip failures: {r['round_trip_failures']}",
             f"code run: {sum(r['code_events'].values())} audit events"
             + (f" {r['code_events']}" if r["code_events"] else "")
             + f", sentinel file {'CREATED' if r['sentinel_created'] else 'absent'}, hook "
             + ("calibrated" if r["hook_calibrated"] else "NOT calibrated (sees no exec)")
             + "".join(f"\n  {k}: {v}" for k, v in r["code_event_examples"].items())
             + ("\n  not program code: " + "; ".join(f"{v} x {k}" for k, v in r["allowed_events"].items())
                if r["allowed_events"] else ""),
             "by kind: " + "; ".join(f"{k} " + ", ".join(f"{s} {n}" for s, n in sorted(v.items()))
                                     for k, v in r["outcomes"].items())]
    shown: collections.Counter = collections.Counter()
    for f in r["failures"]:
        key = f["error"].split("\n")[0]
        shown[key] += 1
        if shown[key] <= show:
            lines += [f"\n[{f['stage']}] text {f['index']} ({f['kind']}): {f['error']}", f["text"]]
    return "\n".join(lines)


def ok(r: dict) -> bool:
    """No crash, no round-trip failure, no code run, and a hook that would have seen it."""
    return (r["crashes"] == 0 and r["round_trip_failures"] == 0 and not r["code_events"]
            and not r["sentinel_created"] and r["hook_calibrated"])


def main(args: argparse.Namespace) -> int:
    def progress(done, total, failed):
        if sys.stderr.isatty() and (done % 100 == 0 or done == total):
            sys.stderr.write(f"\r{done}/{total} texts, {failed} failures\x1b[K")
            sys.stderr.flush()

    r = run(args.count, args.seed, args.timeout, progress)
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    print(json.dumps(r) if args.json else report(r, args.show))
    return 0 if ok(r) else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help=f"texts (default: {DEFAULT_COUNT:,})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator (default: 0)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds of SymPy per program (default: {DEFAULT_TIMEOUT})")
    parser.add_argument("--show", type=int, default=3, help="reproducers shown per distinct error (default: 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (every failure included)")
