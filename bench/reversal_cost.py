"""Iteration cost of KDE-GAN training against the plain GAN step (KDE-GAN paper, App. A:
reversal with 5 / 20 / 50 steps makes an iteration 1.9x / 4.9x / 9.8x as long).

Both models use one recipe's networks (``gan-mnist-mlp`` / ``kde-gan-mnist-mlp`` by
default, ``--arch dcgan`` for the DCGAN pair) and a batch of 100 MNIST-shaped
images (random pixels: the cost does not depend on the values). The KDE-GAN runs
with ``threshold = inf`` so every iteration takes exactly ``T`` reversal steps, the
setting of the paper's timings. Each model's Keras ``train_function`` is warmed
up, then called one step per call; the models are interleaved over ``--rounds``
rounds (this machine's timing is noisy) and the medians are reported with the
ratio to the GAN.

    .venv/bin/python bench/reversal_cost.py                 # MLP, T in 5 20 50
    .venv/bin/python bench/reversal_cost.py --arch dcgan --steps 3 --rounds 3

Prints a Markdown table. A benchmark: never part of the test run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfgen.models  # noqa: E402,F401
from tfgen.trainers import recipes  # noqa: E402


def build(name, **model_options):
    r = recipes.get(name)
    if model_options:
        r = r.replace(model_options={**r.model_options, **model_options})
    keras.utils.set_random_seed(0)
    return recipes.build_model(r, (28, 28, 1))


def train_fn(model, batch):
    model.make_train_function()
    it = iter(tf.data.Dataset.from_tensors(batch).repeat())
    return lambda: model.train_function(it)


def time_steps(fn, steps):
    t0 = time.perf_counter()
    for _ in range(steps):
        logs = fn()
    float(next(iter(logs.values())))  # wait for the last step
    return (time.perf_counter() - t0) / steps


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=["mlp", "dcgan"], default="mlp")
    p.add_argument("--reversal-steps", type=int, nargs="+", default=[5, 20, 50])
    p.add_argument("--steps", type=int, default=10, help="timed iterations per model per round")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()

    suffix = "-mlp" if args.arch == "mlp" else ""
    batch = np.random.default_rng(0).uniform(size=(100, 28, 28, 1)).astype("float32")
    fns = {"GAN": train_fn(build("gan-mnist" + suffix), batch)}
    for t in args.reversal_steps:
        fns[f"KDE-GAN, T = {t}"] = train_fn(
            build("kde-gan-mnist" + suffix, reversal_steps=t, threshold=float("inf")), batch)
    for fn in fns.values():  # trace and warm up
        time_steps(fn, 2)
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(time_steps(fns[name], args.steps))
    gan = statistics.median(times["GAN"])
    paper = {5: 1.9, 20: 4.9, 50: 9.8}
    print(f"\n{args.arch} networks, batch 100, {args.rounds} rounds x {args.steps} iterations, "
          f"median ms per iteration\n")
    print("| model | ms / iteration | x GAN | paper |")
    print("|---|---|---|---|")
    for name in names:
        med = statistics.median(times[name])
        t = int(name.split("= ")[1]) if "=" in name else None
        print(f"| {name} | {1e3 * med:.1f} | {med / gan:.2f} | {paper.get(t, 1.0) if t else 1.0} |")


if __name__ == "__main__":
    main()
