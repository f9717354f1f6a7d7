"""Iteration cost of KDE-GAN training against the plain GAN step (KDE-GAN paper, App. A:
reversal with 5 / 20 / 50 steps makes an iteration 1.9x / 4.9x / 9.8x as long).

Both models use one recipe's networks (``gan-mnist-mlp`` / ``kde-gan-mnist-mlp`` by
default, ``--arch dcgan`` for the DCGAN pair) and a batch of 100 MNIST-shaped
images (random pixels: the cost does not depend on the values). Each KDE-GAN runs
exactly ``T`` reversal steps per iteration, the setting of the paper's timings, in
two forms:

* **with the test** (``threshold = 1e30``: tested every step, never trips): the
  data batch and a generated reference batch are reversed together (200 codes),
  the paper's Algorithm 2;
* **fixed T** (``threshold = inf``): the test cannot stop the loop, so the model
  reverses the data batch alone (100 codes), half the work.

``--xla`` adds both forms with the reversal loop compiled by XLA
(``reversal_jit_compile=True``). Each model's Keras ``train_function`` is warmed
up, then called one step per call; the models are interleaved over ``--rounds``
rounds (this machine's timing is noisy) and the medians are reported with the
ratio to the GAN, which is never XLA-compiled.

    .venv/bin/python bench/reversal_cost.py                 # MLP, T in 5 20 50
    .venv/bin/python bench/reversal_cost.py --xla --rounds 3 --steps 4
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
    p.add_argument("--xla", action="store_true", help="also time the XLA-compiled reversal loop")
    args = p.parse_args()

    suffix = "-mlp" if args.arch == "mlp" else ""
    batch = np.random.default_rng(0).uniform(size=(100, 28, 28, 1)).astype("float32")
    fns = {"GAN": train_fn(build("gan-mnist" + suffix), batch)}
    forms = [("with the test", 1e30), ("fixed T", float("inf"))]
    for t in args.reversal_steps:
        for xla in (False, True) if args.xla else (False,):
            for form, threshold in forms:
                name = f"KDE-GAN, T = {t}, {form}{', XLA' if xla else ''}"
                fns[name] = train_fn(build("kde-gan-mnist" + suffix, reversal_steps=t, threshold=threshold,
                                           reversal_jit_compile=xla), batch)
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
    print("| model | ms / iteration | x GAN | paper (with the test) |")
    print("|---|---|---|---|")
    for name in names:
        med = statistics.median(times[name])
        t = int(name.split("= ")[1].split(",")[0]) if "=" in name else None
        print(f"| {name} | {1e3 * med:.1f} | {med / gan:.2f} | {paper.get(t, 1.0) if t else 1.0} |")


if __name__ == "__main__":
    main()
