"""The command line, run in-process: every subcommand, and the errors users see."""

import json

import numpy as np
import pytest

from tfgen import cli


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_recipes_lists_paper_recipes(capsys):
    code, out, _ = run(capsys, "recipes")
    assert code == 0
    for name in ("gram-ring8", "mmd-net-ring8", "gram-mnist", "mmd-net-mnist", "gram-digits"):
        assert name in out


def test_train_sample_export_evaluate_publish(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TFGEN_ZOO_DIR", str(tmp_path / "zoo"))
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "mmd-net-ring8", "--steps", "100", "--out", str(run_dir))
    assert code == 0, err
    assert json.loads(out[out.index("{"):out.rindex("}") + 1])["n_modes"] == 8

    code, out, _ = run(capsys, "sample", str(run_dir), "-n", "16", "--out", str(tmp_path / "s.npy"), "--seed", "3")
    assert code == 0
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (16, 2) and np.all(np.isfinite(samples))
    assert run(capsys, "sample", str(run_dir), "-n", "500", "--out", str(tmp_path / "s.png"))[0] == 0
    assert (tmp_path / "s.png").stat().st_size > 1000

    code, _, _ = run(capsys, "export", str(run_dir), str(tmp_path / "export"))
    assert code == 0
    code, _, err = run(capsys, "export", str(run_dir), str(tmp_path / "export"))
    assert code == 2 and "exists" in err

    code, out, _ = run(capsys, "evaluate", str(run_dir))
    assert code == 0 and json.loads(out)["n_modes"] == 8

    (run_dir / "evaluations").mkdir()
    (run_dir / "evaluations" / "parzen-li2015.json").write_text('{"mean": 1.5}')
    code, out, _ = run(capsys, "zoo", "publish", str(run_dir), "mmd-net-ring8-test", "--command", "tfgen train ...")
    assert code == 0
    card = json.loads((tmp_path / "zoo" / "mmd-net-ring8-test" / "card.json").read_text())
    assert card["evaluations"] == {"parzen-li2015": {"mean": 1.5}}
    code, out, _ = run(capsys, "zoo", "list")
    assert "mmd-net-ring8-test" in out and "modes_covered" in out
    code, _, _ = run(capsys, "sample", "mmd-net-ring8-test", "-n", "16", "--out", str(tmp_path / "z.npy"), "--seed", "3")
    np.testing.assert_allclose(np.load(tmp_path / "z.npy"), samples, atol=1e-5)


@pytest.mark.parametrize("argv,message", [
    (("train", "gram-rin8"), "unknown recipe 'gram-rin8'; did you mean 'gram-ring8'"),
    (("train", "gram-ring8", "--steps", "-5"), "steps must be positive"),
    (("sample", "no-such-model", "-n", "4", "--out", "x.png"), "unknown zoo entry"),
    (("sample", "./missing/dir", "-n", "4", "--out", "x.png"), "no such file"),
])
def test_errors_are_one_clear_line(capsys, argv, message, tmp_path, monkeypatch):
    monkeypatch.setenv("TFGEN_ZOO_DIR", str(tmp_path / "zoo"))
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_bad_output_name(tmp_path, capsys, monkeypatch):
    code, _, err = run(capsys, "sample", "gram-ring8", "-n", "4", "--out", str(tmp_path / "x.jpg"))
    assert code == 2


def test_sgn_digits_and_latent_interpolation(tmp_path, capsys):
    run_dir = tmp_path / "sgn"
    code, out, err = run(capsys, "train", "sgn-digits", "--steps", "20", "--out", str(run_dir))
    assert code == 0, err
    assert "mmd2_vs_test" in out
    png = tmp_path / "interp.png"
    code, _, err = run(capsys, "sample", str(run_dir), "-n", "1", "--interpolate", "3", "--steps", "5",
                       "--out", str(png))
    assert code == 0, err
    assert png.stat().st_size > 1000
    code, _, err = run(capsys, "sample", str(run_dir), "--interpolate", "3", "--out", str(tmp_path / "i.npy"))
    assert code == 2 and "must end in .png" in err
    # --traverse passes its reversal settings on: one step leaves a larger error than 100
    mse = {}
    for steps in (1, 100):
        code, out, err = run(capsys, "sample", str(run_dir), "--traverse", "2", "--reversal-steps", str(steps),
                             "--reversal-lr", "1", "--out", str(tmp_path / f"t{steps}.png"))
        assert code == 0, err
        mse[steps] = float(out.split("reversal MSE per pixel ")[1].rstrip(")\n"))
    assert mse[100] < 0.8 * mse[1]
