"""MNIST: every model judged by one protocol in one command (FID / KID / IS on
the zoo's LeNet features, and the pixel-space MMD^2 against the test set).

    TFGEN_DATA_DIR=../shared/data python bench/mnist_scores.py \
        gan-mnist-mlp runs/wgan-gp-mnist-mlp runs/level-set-mnist-mlp ...

Each argument is a run directory or a zoo name. For each model: 10,000 samples
(seed 0) against 10,000 test images on the 512-d features of ``lenet-mnist``
(``tfgen.trainers.evaluate.image_scores``), the unbiased MMD^2 of the project's
default MNIST protocol (``tfgen.trainers.evaluate.evaluate``: 2000 samples vs
2000 test images, one median-heuristic kernel), and an 8x8 sample grid. The
first row is the same scores for 10,000 real training images: the floor.
Writes ``docs/mnist_scores.md`` (``--out``) and ``docs/<name>-samples.png``.
A benchmark: never part of the test run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _train_info(arg: str) -> dict:
    """Recipe name, steps and training time from a run's metrics.json or a zoo card."""
    path = pathlib.Path(arg)
    for candidate in (path / "metrics.json", path / "card.json"):
        if candidate.is_file():
            return json.loads(candidate.read_text())
    try:
        import tfgen

        return tfgen.zoo.card(arg)
    except Exception:
        return {}


def _options(args) -> str:
    """The non-default options of this run, as they are typed."""
    defaults = {"n": 10_000, "seed": 0, "out": "docs/mnist_scores.md", "json": None,
                "title": "MNIST: every model by one protocol"}
    parts = [f" --{k} {json.dumps(v) if k == 'title' else v}" for k, v in vars(args).items()
             if k in defaults and v != defaults[k]]
    return "".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="run directories or zoo names")
    parser.add_argument("--n", type=int, default=10_000, help="samples and test images (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/mnist_scores.md")
    parser.add_argument("--json", default=None, help="also write the raw scores here")
    parser.add_argument("--title", default="MNIST: every model by one protocol")
    args = parser.parse_args(argv)
    if args.n < 100:
        parser.error("--n must be at least 100")

    import keras
    import numpy as np
    import tensorflow as tf

    import tfgen
    import tfgen.models  # noqa: F401  (registers the model classes for keras loading)
    from tfgen import plotting
    import importlib

    # the module (tfgen.trainers re-exports its function of the same name)
    evaluate = importlib.import_module("tfgen.trainers.evaluate")

    docs = pathlib.Path(args.out).parent
    docs.mkdir(parents=True, exist_ok=True)
    t_all = time.time()
    print(f"scoring real training images (the floor), n = {args.n}", flush=True)
    reference = evaluate.image_scores(None, "mnist", n=args.n, seed=args.seed)
    rows = []
    for arg in args.models:
        t0 = time.time()
        path = pathlib.Path(arg)
        if (path / "model.keras").is_file():
            model = keras.models.load_model(str(path / "model.keras"))
            name = path.name
        else:
            model = tfgen.load(arg, format="keras")
            name = arg
        info = _train_info(arg)
        scores = evaluate.image_scores(model, "mnist", n=args.n, seed=args.seed)
        mmd = evaluate.evaluate(model, "mnist", seed=args.seed)
        picture = docs / f"{name}-samples.png"
        plotting.image_grid(np.asarray(model.sample(64, seed=args.seed)), str(picture), ncols=8,
                            title=f"{name}: 64 samples")
        recipe = info.get("recipe")
        rows.append({"name": name, "recipe": recipe if isinstance(recipe, str) else (recipe or {}).get("name", name),
                     "method": type(model).__name__, "steps": info.get("steps"),
                     "train_seconds": info.get("train_seconds"),
                     "train_seconds_from_step": info.get("train_seconds_from_step"),
                     "fid": scores["fid"], "kid": scores["kid"], "kid_std": scores["kid_std"],
                     "inception_score": scores.get("inception_score"),
                     "inception_score_std": scores.get("inception_score_std"),
                     "mmd2": mmd.get("mmd2_vs_test"), "picture": picture.name})
        print(f"{name}: FID {scores['fid']:.1f}  KID {scores['kid']:.3f}  IS {scores.get('inception_score', 0):.2f}  "
              f"MMD^2 {mmd.get('mmd2_vs_test', float('nan')):.4f}  ({time.time() - t0:.0f} s)", flush=True)
        del model
        keras.backend.clear_session()

    real = reference["real_train_images"]
    lines = [f"# {args.title}", "",
             "Generated by `bench/mnist_scores.py` (a benchmark: not part of the test run).", "",
             f"- command: `python bench/mnist_scores.py {' '.join(args.models)}{_options(args)}`",
             f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}; machine: {os.cpu_count()} CPU "
             f"cores, Python {platform.python_version()}, TensorFlow {tf.__version__}; "
             f"wall time {(time.time() - t_all) / 60:.1f} min",
             f"- FID / KID / IS: {reference['protocol']} (the zoo's `lenet-mnist`, test accuracy 0.9867); "
             f"seed {args.seed}",
             "- MMD^2: the project's default MNIST statistic (unbiased, 2000 samples vs 2000 test images, "
             "one Gaussian kernel at the median-heuristic bandwidth)",
             "- each model is one training run (seed 0): no error bars across seeds; train s: the run's "
             "training time (\"from step N\": resumed from a checkpoint older than the run clock, the "
             "time before step N unrecorded)", "",
             "| model | method | steps | train s | FID ↓ | KID ↓ | IS ↑ | MMD² ↓ |",
             "|---|---|---|---|---|---|---|---|",
             f"| real training images (floor) | – | – | – | {real['fid']:.2f} | {real['kid']:.3f} | "
             f"{real.get('inception_score', float('nan')):.2f} | – |"]
    for r in rows:
        ts = f"{r['train_seconds']:.0f}" if r["train_seconds"] else "–"
        if r.get("train_seconds_from_step"):
            ts += f" (from step {r['train_seconds_from_step']})"
        lines.append(f"| `{r['name']}` | {r['method']} | {r['steps'] or '–'} | {ts} | {r['fid']:.1f} | "
                     f"{r['kid']:.3f} ± {r['kid_std']:.3f} | {r['inception_score'] or float('nan'):.2f} | "
                     f"{r['mmd2'] if r['mmd2'] is None else format(r['mmd2'], '.4f')} |")
    lines += ["", "## Samples", ""]
    for r in rows:
        lines += [f"### {r['name']}", "", f"![{r['name']} samples]({r['picture']})", ""]
    pathlib.Path(args.out).write_text("\n".join(lines) + "\n")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"reference": reference, "models": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
