"""bench/stability.py: the grid's recipes, the run cache, the scoring rules, and a 2-step end-to-end run.

The benchmark itself is never part of the test run; these tests only keep its
plumbing honest (a few seconds, one tiny training run).
"""

import importlib.util
import json
import math
import pathlib

import numpy as np
import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "stability.py"


@pytest.fixture(scope="module")
def stab():
    spec = importlib.util.spec_from_file_location("bench_stability", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(method="gan", h=2, width=20, seed=0, steps=20, modes=8, hq=0.9, diverged=False):
    return dict(method=method, recipe="x", h=h, hidden=width, seed=seed, seed_index=seed, steps=steps,
                batch_size=200, prior="gaussian", finished="2026-01-01T00:00:00",
                stats={"modes_covered": modes, "n_modes": 8, "high_quality_rate": hq,
                       "kl_to_uniform_modes": math.inf if hq == 0 else 0.01, "diverged": diverged},
                diverged=diverged, losses_finite=not diverged, error=None, steps_done=steps,
                train_s=1.0, prior_fit_s=0.0, sample_s=0.1, prior_fit=None, stats_training_prior=None,
                last_logs={"g_loss": math.nan if diverged else 0.5}, samples=[[2.0, 0.0], [None, None]])


@pytest.mark.parametrize("method", ["gan", "wgan_gp", "mmd_net", "mmd_gan", "gram", "level_set", "sgn", "kde_gan"])
def test_setting_recipe_changes_every_network_and_keeps_the_prior(stab, method):
    from tfgen.trainers import recipes

    base = recipes.get(stab.METHODS[method][0])
    r = stab.setting_recipe(method, 8, 20, 2, 50)
    assert (r.latent_dim, r.seed, r.steps) == (8, base.seed + 2, 50)
    assert r.prior == base.prior and r.prior_options == base.prior_options
    assert r.batch_size == base.batch_size
    for net in ("generator", "critic", "decoder"):
        spec = getattr(r, net)
        assert (spec is None) == (getattr(base, net) is None)
        if spec is not None:
            assert spec.hidden == (20, 20)
            assert spec.activation == getattr(base, net).activation
    assert recipes.build_prior(r).dim == 8


def test_cache_round_trips_non_finite_values_atomically(stab, tmp_path):
    path = str(tmp_path / "sub" / "runs.json")
    runs = {stab.run_key("gan", 2, 20, 0, 20): _run(), stab.run_key("gan", 4, 20, 0, 20): _run(h=4, hq=0.0,
                                                                                                 diverged=True)}
    stab.save_cache(path, runs)
    json.loads(pathlib.Path(path).read_text())  # strict JSON: no bare NaN / Infinity
    assert not (tmp_path / "sub" / "runs.json.tmp").exists()
    back = stab.load_cache(path)
    assert set(back) == set(runs)
    bad = back[stab.run_key("gan", 4, 20, 0, 20)]
    assert math.isnan(bad["last_logs"]["g_loss"]) and bad["stats"]["kl_to_uniform_modes"] == math.inf
    assert back[stab.run_key("gan", 2, 20, 0, 20)]["samples"][1] == [None, None]


def test_load_cache_refuses_foreign_files(stab, tmp_path):
    p = tmp_path / "runs.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        stab.load_cache(str(p))
    p.write_text('{"runs": []}')
    with pytest.raises(ValueError, match="not a bench/stability.py cache"):
        stab.load_cache(str(p))
    assert stab.load_cache(str(tmp_path / "absent.json")) == {}


def test_collapse_and_convergence_rules(stab):
    assert stab.collapse_reason(_run(modes=7, hq=0.95), 0.715) == "modes"
    assert stab.collapse_reason(_run(modes=8, hq=0.70), 0.715) == "HQ"
    assert stab.collapse_reason(_run(modes=8, hq=0.80), 0.715) is None
    assert stab.collapse_reason(_run(modes=0, hq=0.0, diverged=True), 0.715) is None  # counted as diverged
    assert stab.converged(_run()) and not stab.converged(_run(diverged=True))
    rows = [_run(seed=0), _run(seed=1, modes=7), _run(h=4, seed=0, diverged=True, modes=0, hq=0.0)]
    s = stab.method_summary(rows, [(2, 20), (4, 20)], 0.715)
    assert (s["conv_settings"], s["conv_runs"], s["diverged"], s["collapsed"], s["collapsed_modes"]) == (0, 1, 1, 1, 1)
    assert stab.cell(rows[:2], 0.715) == "7.5/8 (1/2 conv), 90% *coll. x1*"
    assert stab.cell(rows[2:], 0.715) == "0/8, 0% **NaN**"


def test_quick_end_to_end_then_report_only(stab, tmp_path, capsys):
    out, cache = tmp_path / "stab.md", tmp_path / "runs.json"
    common = ["--methods", "gan", "--noise-dims", "2", "--hidden", "8", "--seeds", "1", "--steps", "2",
              "--cache", str(cache), "--out", str(out)]
    stab.main(["--quick", *common])
    runs = stab.load_cache(str(cache))
    (r,) = runs.values()
    assert (r["steps_done"], r["h"], r["hidden"]) == (2, 2, 8)
    assert len(r["samples"]) == stab.N_KEEP and "samples" in r and r["stats"]["n_samples"] == stab.N_EVAL
    assert "| GAN | 1/1 |" in out.read_text() and (tmp_path / "stab.png").stat().st_size > 0
    capsys.readouterr()
    stab.main(common)  # cached: trains nothing
    assert "0 to run" in capsys.readouterr().out
    out.unlink()
    stab.main(["--report-only", *common])
    assert out.exists()
    assert np.isfinite(r["train_s"])
