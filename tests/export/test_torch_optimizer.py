"""symopt.to_torch and export_source(..., framework="torch"): programs as torch.optim optimizers.

Real torch training throughout (no mocks). What they compute is checked against symopt.to_optax on
programs that use every library function (tests/export/test_source.py's), and the interpreted
optimizer against the exported module; how they behave as torch optimizers (param groups, schedulers,
state_dict, closures, bf16, skipped parameters, errors) on small models.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import itertools
import runpy
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is an optional extra: pip install 'symopt[torch]'")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from tests.export.test_source import PARAMS, PROGRAMS  # noqa: E402

from symopt import baselines, export_source, parse, to_optax, to_torch  # noqa: E402
from symopt.export.torch_array import xp  # noqa: E402
from symopt.programs.functions import FUNCTIONS, OPERATORS  # noqa: E402
from symopt.programs.spaces import FlatSpace, TreeSpace  # noqa: E402

_counter = itertools.count()


def load_class(tmp_path, program, name="Exported"):
    """The class of ``export_source(program, name, framework="torch")``, written to a file and imported."""
    path = tmp_path / f"torch_{name}_{next(_counter)}.py"
    path.write_text(export_source(program, name, framework="torch"))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def sin_steps(make, params=PARAMS, steps=20, dtype=torch.float32):
    """The parameters after ``steps`` steps on the gradients sin(3 w + k) + 0.1 w (tests/export/test_source's)."""
    ps = [torch.nn.Parameter(torch.tensor(np.asarray(params[k]), dtype=dtype)) for k in sorted(params)]
    opt = make(ps)
    for k in range(steps):
        for p in ps:
            p.grad = (torch.sin(3.0 * p.detach().float() + k) + 0.1 * p.detach().float()).to(dtype)
        opt.step()
    return [p.detach().float().numpy() for p in ps]


def optax_sin_steps(opt, params=PARAMS, steps=20, dtype=jnp.float32):
    p = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    state = opt.init(p)
    for k in range(steps):
        g = jax.tree_util.tree_map(lambda x: (jnp.sin(3.0 * x.astype(jnp.float32) + k)
                                              + 0.1 * x.astype(jnp.float32)).astype(dtype), p)
        u, state = opt.update(g, state, p)
        p = optax.apply_updates(p, u)
    return [np.asarray(p[k], np.float32) for k in sorted(p)]


def assert_same(ours, theirs, rtol=1e-6, atol=1e-7):
    for a, b in zip(ours, theirs, strict=True):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def assert_near(ours, theirs, tol=1e-5):
    """Within ``tol`` of each tensor's largest entry (tests/export/test_torch_equivalence.py says why)."""
    for a, b in zip(ours, theirs, strict=True):
        assert np.all(np.isfinite(a)) and np.max(np.abs(a - b)) <= tol * np.max(np.abs(b))


# --- the library's torch forms ------------------------------------------------------------------------

def test_every_library_function_has_a_torch_form():
    assert {name for name, f in FUNCTIONS.items() if f.torch} | set(OPERATORS) == set(FUNCTIONS)
    assert all(f.export[0] for f in FUNCTIONS.values() if f.torch)  # and a docstring, as the optax module's


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_numeric_form_on_torch_matches_numpy(name):
    """Each function's one numeric form, run on torch (torch_array.xp), gives NumPy's values."""
    f = FUNCTIONS[name]
    rng = np.random.default_rng(0)
    arrays = [np.float32(rng.uniform(0.2, 0.9, (4, 3))) for _ in range(f.arity)]  # inside every domain
    if name == "arccosh":
        arrays = [a + np.float32(1.0) for a in arrays]
    tree = TreeSpace(xp)
    scalars = f.arity == 2 and name == "clip_by_global_norm"  # its second argument is a number
    ours = f.apply(tree, *[[torch.tensor(a)] if i == 0 or not scalars else 0.5 for i, a in enumerate(arrays)])
    theirs = (f.apply(TreeSpace(np), *[[a] if i == 0 or not scalars else np.float32(0.5)
                                       for i, a in enumerate(arrays)]) if f.arity else f.apply(FlatSpace(np)))
    ours = ours[0] if isinstance(ours, list) else ours
    theirs = theirs[0] if isinstance(theirs, list) else theirs
    np.testing.assert_allclose(np.asarray(ours, np.float64), np.asarray(theirs, np.float64), rtol=2e-6, atol=1e-7)
    number = 1.5 if name == "arccosh" else 0.5
    scalar = f.apply(tree, *[number] * f.arity)  # numbers, as a program's constants are
    expected = f.apply(FlatSpace(np), *[np.float32(number)] * f.arity)
    np.testing.assert_allclose(float(scalar), float(expected), rtol=2e-6)


# --- to_torch, the exported module and to_optax compute the same ----------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(PROGRAMS))
def test_interpreted_exported_and_optax_agree(tmp_path, key):
    """Every library function (the programs use them all, matrix ones included, on a [4, 3] matrix and a vector).

    The interpreted optimizer and the exported module run the same torch operations (20 steps). Against
    optax, 10 steps: jax's and torch's roundings (sin, pow, sums) differ by 1e-7 at a step, and the
    reductions program's switches (max, min, sign) carry that to 1.3e-5 by step 20 (2e-7 at step 10)."""
    program = parse(PROGRAMS[key])
    interpreted = sin_steps(lambda ps: to_torch(program)(ps, lr=0.01))
    exported = sin_steps(lambda ps: load_class(tmp_path, program)(ps, lr=0.01))
    assert_same(interpreted, exported)
    assert_near(sin_steps(lambda ps: to_torch(program)(ps, lr=0.01), steps=10),
                optax_sin_steps(to_optax(program, 0.01), steps=10))


def test_factored_state_is_stored_factored(tmp_path):
    program = parse(PROGRAMS["matrices"])
    for cls in (to_torch(program), load_class(tmp_path, program)):
        a = torch.nn.Parameter(torch.ones(4, 3))
        b = torch.nn.Parameter(torch.ones(3))
        opt = cls([a, b], lr=0.01)
        a.grad, b.grad = torch.full_like(a, 0.5), torch.full_like(b, 0.5)
        opt.step()
        shapes = {k: (tuple(opt.state[a][k].shape), tuple(opt.state[b][k].shape)) for k in ("m", "v_row", "v_col")}
        assert shapes == {"m": ((4, 3), (3,)), "v_row": ((4, 1), (3,)), "v_col": ((1, 3), (1,))}


# --- behaving as a torch optimizer ----------------------------------------------------------------------

def test_signature_defaults_and_overrides():
    Adam = to_torch(baselines.get("adam"))
    sig = inspect.signature(Adam)
    assert list(sig.parameters)[:2] == ["params", "lr"] and sig.parameters["lr"].default == 1e-3
    assert {k: sig.parameters[k].default for k in ("b1", "b2", "eps")} == {"b1": 0.9, "b2": 0.999, "eps": 1e-8}
    opt = Adam([torch.nn.Parameter(torch.zeros(2))], lr=0.1, b1=0.5)
    assert opt.param_groups[0]["b1"] == 0.5 and opt.param_groups[0]["b2"] == 0.999
    with pytest.raises(TypeError, match=r"unknown hyperparameter\(s\) 'beta1'.*b1=0.9"):
        Adam([torch.nn.Parameter(torch.zeros(2))], beta1=0.5)
    with pytest.raises(ValueError, match="invalid learning rate"):
        Adam([torch.nn.Parameter(torch.zeros(2))], lr=-1.0)


def test_param_groups_have_their_own_lr_and_constants():
    """Two groups with their own lr and b1 step as two optimizers would, one per group."""
    Adam = to_torch(baselines.get("adam"))
    w = {k: np.asarray(v) for k, v in PARAMS.items()}
    [a2, b2] = sin_steps(lambda ps: Adam([{"params": [ps[0]], "lr": 0.05, "b1": 0.5}, {"params": [ps[1]]}], lr=0.01))
    [a1] = sin_steps(lambda ps: Adam(ps, lr=0.05, b1=0.5), params={"a": w["a"]})
    [b1] = sin_steps(lambda ps: Adam(ps, lr=0.01), params={"b": w["b"]})
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)


def test_tree_wide_functions_are_over_a_groups_parameters():
    """update = g / global_norm(g): each group's update has norm lr, whatever its other groups hold."""
    Normalized = to_torch(parse("def normalized(g, lr):\n    return lr * g / global_norm(g)\n"))
    ps = [torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(5))]
    opt = Normalized([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.5}], lr=0.1)
    for i, p in enumerate(ps):
        p.grad = torch.full_like(p, float(i + 1))
    opt.step()
    first = torch.sqrt(sum(torch.sum(p.detach() ** 2) for p in ps[:2]))
    assert float(first) == pytest.approx(0.1, rel=1e-6)
    assert float(torch.linalg.norm(ps[2].detach())) == pytest.approx(0.5, rel=1e-6)


def test_scheduler_drives_lr():
    """StepLR's rates are the rates the optimizer steps with: the same as setting group['lr'] by hand."""
    Sgd = to_torch(baselines.get("sgd"))

    def scheduled(ps):
        opt = Sgd(ps, lr=0.1)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        original = opt.step

        def step():
            original()
            sched.step()
        opt.step = step
        return opt

    def by_hand(ps):
        opt = Sgd(ps, lr=0.1)
        original, count = opt.step, itertools.count(1)

        def step():
            original()
            opt.param_groups[0]["lr"] = 0.1 * 0.5 ** (next(count) // 2)
        opt.step = step
        return opt
    ours, theirs = sin_steps(scheduled, steps=7), sin_steps(by_hand, steps=7)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(ours[0], sin_steps(lambda ps: Sgd(ps, lr=0.1), steps=7)[0])


def test_state_dict_round_trip(tmp_path):
    """5 steps, state_dict saved to a file and loaded into a new optimizer, 5 more: as 10 steps in one run."""
    Radam = to_torch(baselines.get("radam"))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(32, 4), torch.randn(32, 2)

    def train(opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            torch.mean((model(x) - y) ** 2).backward()
            opt.step()

    train(Radam(model.parameters(), lr=0.01), 10)
    straight = [p.detach().clone() for p in model.parameters()]
    model.load_state_dict(start)
    opt = Radam(model.parameters(), lr=0.01)
    train(opt, 5)
    torch.save(opt.state_dict(), tmp_path / "opt.pt")
    resumed = Radam(model.parameters(), lr=0.01)
    resumed.load_state_dict(torch.load(tmp_path / "opt.pt"))
    assert float(resumed.state[next(model.parameters())]["step"]) == 5.0
    train(resumed, 5)
    for a, b in zip(model.parameters(), straight):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=0)


def test_closure_is_evaluated_with_grad_and_its_loss_returned():
    Lion = to_torch(baselines.get("lion"))
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = Lion([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = torch.sum(w ** 2)
        loss.backward()
        return loss
    assert float(opt.step(closure)) == 5.0
    torch.testing.assert_close(w.detach(), torch.tensor([1.0, -2.0]) - 0.1 * (torch.tensor([1.0, -1.0])
                                                                             + 1e-3 * torch.tensor([1.0, -2.0])))


def test_parameters_without_gradient_are_skipped():
    Adam = to_torch(baselines.get("adam"))
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    opt = Adam([a, b], lr=0.1)
    a.grad = torch.ones(3)
    opt.step()
    assert torch.all(b.detach() == 1.0) and b not in opt.state and torch.all(a.detach() < 1.0)


@pytest.mark.slow
def test_bf16_parameters_stay_bf16_and_train_as_optax_does(tmp_path):
    """bf16 in, bf16 out (state too), as to_optax; the two frameworks round bf16 arithmetic differently
    (torch computes bf16 ops in float32, XLA may round between them), so they agree to bf16's precision."""
    program = baselines.get("adamw")
    for cls in (to_torch(program), load_class(tmp_path, program)):
        p = torch.nn.Parameter(torch.ones(4, 3, dtype=torch.bfloat16))
        opt = cls([p], lr=0.01)
        p.grad = torch.full_like(p, 0.25)
        opt.step()
        assert p.dtype == torch.bfloat16 and all(v.dtype == torch.bfloat16 for k, v in opt.state[p].items()
                                                 if k != "step")
    ours = sin_steps(lambda ps: to_torch(program)(ps, lr=0.01), dtype=torch.bfloat16)
    theirs = optax_sin_steps(to_optax(program, 0.01), dtype=jnp.bfloat16)
    for a, b in zip(ours, theirs):
        assert np.max(np.abs(a - b)) <= 2 * 2 ** -8 * np.max(np.abs(b))  # two bf16 roundings of the largest


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_other_float_dtypes_train_in_their_dtype(dtype):
    """float16 and float64 parameters keep their dtype and take the same steps as float32, to their precision."""
    program = baselines.get("adam")
    ours = sin_steps(lambda ps: to_torch(program)(ps, lr=0.01), steps=5, dtype=dtype)
    theirs = sin_steps(lambda ps: to_torch(program)(ps, lr=0.01), steps=5)
    tol = 4 * torch.finfo(dtype).eps if dtype == torch.float16 else 1e-6
    assert_near(ours, theirs, tol=tol)


# --- errors ---------------------------------------------------------------------------------------------

def test_unsupported_dtype_is_refused_with_the_supported_ones(tmp_path):
    for cls in (to_torch(baselines.get("sgd")), load_class(tmp_path, baselines.get("sgd"))):
        with pytest.raises(TypeError, match=r"parameter 1 of group 0 is torch.complex64.*torch.float32, "
                                            r"torch.bfloat16"):
            cls([torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2, dtype=torch.complex64))])


def test_sparse_gradient_is_refused(tmp_path):
    for cls in (to_torch(baselines.get("adam")), load_class(tmp_path, baselines.get("adam"))):
        emb = torch.nn.Embedding(10, 3, sparse=True)
        opt = cls(emb.parameters())
        emb(torch.tensor([1, 2])).sum().backward()
        with pytest.raises(RuntimeError, match="sparse gradient.*SparseAdam"):
            opt.step()


def test_function_without_torch_form_is_refused(monkeypatch):
    monkeypatch.setitem(FUNCTIONS, "sign", dataclasses.replace(FUNCTIONS["sign"], torch=""))
    for export in (to_torch, lambda p: export_source(p, "Lion", framework="torch")):
        with pytest.raises(ValueError, match="calls 'sign', which has no torch form"):
            export(baselines.get("lion"))


def test_bad_programs_and_names():
    with pytest.raises(ValueError, match="hyperparameter 'lr'.*clashes"):
        to_torch(parse("def f(g):\n    lr = 0.1\n    return g * lr\n"))
    with pytest.raises(TypeError, match="needs a symopt.Program"):
        to_torch("def f(g):\n    return g\n")
    with pytest.raises(ValueError, match="not a Python identifier"):
        export_source(baselines.get("sgd"), "my optimizer", framework="torch")
    with pytest.raises(ValueError, match="framework 'tensorflow'"):
        export_source(baselines.get("sgd"), "opt", framework="tensorflow")


# --- the module, and symopt without torch ------------------------------------------------------------------

def test_exported_module_is_standalone_and_readable():
    source = export_source(baselines.get("adam"), "Adam", framework="torch")
    tree = ast.parse(source)
    imports = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
               for a in n.names} | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imports == {"torch"}
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    doc = ast.get_docstring(cls)
    assert cls.name == "Adam" and "As math" in doc and "b1: the program's 'b1 = 0.9'." in doc
    assert "def __init__(self, params, lr=0.001, *, b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0):" in source


@pytest.mark.slow
def test_symopt_does_not_import_torch_and_says_how_to_get_it():
    code = ("import sys, symopt, symopt.export, symopt.cli\n"
            "assert 'torch' not in sys.modules, 'symopt imported torch'\n"
            "sys.modules['torch'] = None  # as if not installed\n"
            "try:\n"
            "    symopt.to_torch(symopt.baselines.get('adam'))\n"
            "except ModuleNotFoundError as e:\n"
            "    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'symopt[torch]'" in out


# --- README's example and the command ------------------------------------------------------------------------

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_readme_example_trains(capsys):
    example = (ROOT / "examples" / "torch_training.py").read_text()
    assert example.rstrip() in (ROOT / "README.md").read_text(), "README's copy of examples/torch_training.py is stale"
    runpy.run_path(str(ROOT / "examples" / "torch_training.py"), run_name="__main__")
    losses = [float(line.split()[-1]) for line in capsys.readouterr().out.splitlines() if line.startswith("step")]
    assert len(losses) == 5 and losses[-1] < 0.6 * losses[0]


@pytest.mark.slow
def test_export_command_writes_a_torch_module(tmp_path, capsys):
    """symopt export RUN --torch on a real run: the module's class trains as to_torch of the entry does."""
    from tests.cli.test_campaign_commands import TINY

    from symopt.cli import main
    from symopt.storage.run_dir import read_hall_of_fame

    (tmp_path / "tiny.toml").write_text(TINY)
    run = tmp_path / "run"
    assert main(["search", str(tmp_path / "tiny.toml"), "--serial", "--seed", "0", "--run-dir", str(run)]) == 0
    out = tmp_path / "found.py"
    assert main(["export", str(run), "--rank", "1", "-o", str(out), "--torch"]) == 0
    assert "FoundRank1(params, lr=1e-3, ...), a torch.optim.Optimizer" in capsys.readouterr().out
    spec = importlib.util.spec_from_file_location("found_torch", out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    program = read_hall_of_fame(run).entries[0].simplified
    assert_same(sin_steps(lambda ps: module.FoundRank1(ps, lr=0.01)), sin_steps(lambda ps: to_torch(program)(ps, lr=0.01)))
