"""``make demo`` / ``tfgen demo``: the main job on built-in data only.

Trains GRAM and MMD-net on the ring of 8 and GRAM and SGN on scikit-learn's
8x8 digits, writes their pictures and a ``metrics.json``, exports a SavedModel,
reloads it with ``tfgen.load`` and samples from it. A few minutes on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import time

import numpy as np

from tfgen import jsonio


def run_demo(out: str = "outputs/demo", *, quick: bool = False) -> dict:
    import tfgen
    from tfgen import plotting
    from tfgen.trainers import Trainer

    if os.path.isdir(out):
        shutil.rmtree(out)  # a demo starts fresh; it never resumes an old run
    os.makedirs(out)
    plan = [("gram-ring8", 300 if quick else 3000), ("mmd-net-ring8", 300 if quick else 3000),
            ("gram-digits", 300 if quick else 6000), ("sgn-digits", 100 if quick else 3000)]
    report = {"quick": quick, "runs": {}}
    t_start = time.time()
    for recipe, steps in plan:
        print(f"== {recipe}: {steps} steps", flush=True)
        trainer = Trainer(recipe, os.path.join(out, recipe), steps=steps, verbose=2)
        trainer.run()
        report["runs"][recipe] = {k: trainer.summary[k] for k in ("steps", "train_seconds", "metrics")}
        shutil.copy(trainer.final_picture, os.path.join(out, f"{recipe}.png"))
        if trainer.history:
            plotting.loss_curves(trainer.history, os.path.join(out, f"{recipe}-losses.png"), title=recipe)

    # The export round trip a user (or TF Serving) relies on.
    run_dir = os.path.join(out, "gram-digits")
    exported = tfgen.load(os.path.join(run_dir, "saved_model"))
    in_process = tfgen.load(run_dir, format="keras")
    a, b = exported.sample(64, seed=0), np.asarray(in_process.sample(64, seed=0))
    plotting.image_grid(a, os.path.join(out, "gram-digits-from-export.png"),
                        title="gram-digits: 64 samples from the reloaded SavedModel")
    report["export"] = {"path": os.path.join(run_dir, "saved_model"),
                        "max_abs_diff_export_vs_keras": float(np.max(np.abs(a - b)))}
    # SGN paper Fig. 3c: straight lines between pairs of codes
    plotting.latent_interpolation(tfgen.load(os.path.join(out, "sgn-digits"), format="keras"),
                                  os.path.join(out, "sgn-digits-interpolation.png"), rows=6, steps=10,
                                  title="sgn-digits: latent interpolation")
    report["total_seconds"] = round(time.time() - t_start, 1)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        jsonio.dump(report, f, indent=1)

    print("\n== demo summary")
    for recipe, r in report["runs"].items():
        m = r["metrics"]
        if "modes_covered" in m:
            desc = f"modes {m['modes_covered']}/{m['n_modes']}, high quality {m['high_quality_rate']:.1%}"
        else:
            desc = f"MMD^2 vs test {m['mmd2_vs_test']:.4f} (train vs test {m['mmd2_train_vs_test']:.4f})"
        print(f"{recipe:14s} {r['steps']:5d} steps {r['train_seconds']:6.1f}s  {desc}")
    print(f"export reloaded: max |export - keras| = {report['export']['max_abs_diff_export_vs_keras']:.2e}")
    print(f"pictures and metrics.json in {out} ({report['total_seconds']}s)")
    return report
