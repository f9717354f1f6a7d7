"""MNIST: GRAM-net and MMD-net judged by one protocol, side by side.

    TFGEN_DATA_DIR=../shared/data python bench/mnist_mmd.py runs/gram-mnist runs/mmd-net-mnist

For each finished run (or zoo entry) it draws samples with a fixed seed and
runs ``tfgen.trainers.evaluate`` on MNIST: the unbiased MMD^2 between 2000
samples and 2000 test images (Gaussian kernel, median-heuristic bandwidth of
samples + test, 200 permutations), next to the same statistic between the
train and test splits (the floor a perfect model reaches), and it saves each
model's 8x8 sample grid. Writes ``docs/mnist_mmd.md`` and ``docs/<name>-samples.png``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="run directories or zoo names")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/mnist_mmd.md")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    import tfgen
    from tfgen import plotting
    from tfgen.trainers import evaluate

    docs = pathlib.Path(args.out).parent
    docs.mkdir(parents=True, exist_ok=True)
    rows = []
    for arg in args.models:
        path = pathlib.Path(arg)
        model = tfgen.load(path / "saved_model" if path.is_dir() else arg)
        recipe = json.loads((path / "recipe.json").read_text()) if path.is_dir() else tfgen.zoo.card(arg)["recipe"]
        steps = json.loads((path / "metrics.json").read_text())["steps"] if path.is_dir() else tfgen.zoo.card(arg)["steps"]
        name = recipe["name"]
        print(f"evaluating {name} ({arg}) ...", flush=True)
        m = evaluate(model, "mnist", seed=args.seed)
        picture = docs / f"{name}-samples.png"
        plotting.image_grid(np.asarray(model.sample(64, seed=args.seed)), str(picture),
                            title=f"{name}, {steps} steps, seed {args.seed}")
        rows.append((name, steps, m, picture.name))
        print(f"  MMD^2 vs test {m['mmd2_vs_test']:.5f} (p = {m['p_value']:.3f}); "
              f"train vs test {m['mmd2_train_vs_test']:.5f}", flush=True)

    lines = ["# MNIST: MMD two-sample statistic against the test set", "",
             f"- command: `TFGEN_DATA_DIR=../shared/data python bench/mnist_mmd.py {' '.join(args.models)}`",
             f"- date: {datetime.date.today()}; machine: {os.cpu_count()} CPU cores, "
             f"Python {platform.python_version()}, TensorFlow {tf.__version__}",
             f"- protocol: {rows[0][2]['protocol']}", "",
             "| model | steps | MMD^2 vs test | p-value | MMD^2 train vs test (floor) | bandwidth |",
             "|---|---|---|---|---|---|"]
    for name, steps, m, _ in rows:
        lines.append(f"| {name} | {steps} | {m['mmd2_vs_test']:.5f} | {m['p_value']:.3f} | "
                     f"{m['mmd2_train_vs_test']:.5f} | {m['bandwidth'][0]:.2f} |")
    lines.append("")
    for name, steps, _, picture in rows:
        lines += [f"### {name}", "", f"![{name} samples]({picture})", ""]
    pathlib.Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
