"""symopt bench driver: the driver's CPU per training on an instant backend."""

from symopt.cli import main
from symopt.cli.bench_driver import driver_ms, instant_backend
from symopt.programs import baselines


def test_the_instant_backend_scores_each_text_the_same_way_at_once():
    evaluate = instant_backend(["mlp_digits"], [0], None, None)
    a, b = baselines.get("adam"), baselines.get("sgd")
    assert evaluate([a, b, a]) == evaluate([a, b, a]) and evaluate([a])[0] != evaluate([b])[0]
    assert all(-0.5 <= f < 0.5 for f in evaluate([a, b]))


def test_driver_ms_times_a_real_search_stage(capsys):
    assert driver_ms("quick", budget=30) > 0  # a campaign ran: mutation, fingerprints, the log
    assert main(["bench", "driver", "--budget", "30", "--repeats", "1"]) == 0
    assert "driver CPU per training (quick, search stage, instant backend, budget 30)" in capsys.readouterr().out
