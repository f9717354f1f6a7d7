"""`make demo`'s job in its quick form: pictures, metrics.json, an export that reloads."""

import json

from tfgen import cli


def test_quick_demo_writes_pictures_metrics_and_a_reloadable_export(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--quick"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["runs"]) == {"gram-ring8", "mmd-net-ring8", "gram-digits", "sgn-digits"}
    assert report["runs"]["gram-ring8"]["metrics"]["n_modes"] == 8
    assert report["runs"]["gram-digits"]["metrics"]["mmd2_vs_test"] > 0
    # the SavedModel reloaded by tfgen.load samples what the Keras model samples
    assert report["export"]["max_abs_diff_export_vs_keras"] < 1e-5
    for picture in ("gram-ring8.png", "mmd-net-ring8.png", "gram-digits.png",
                    "gram-digits-from-export.png", "gram-ring8-losses.png", "sgn-digits.png",
                    "sgn-digits-interpolation.png"):
        assert (out / picture).stat().st_size > 1000, picture
    assert "demo summary" in capsys.readouterr().out
