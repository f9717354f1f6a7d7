"""The stopping statistic along a reversal (KDE-GAN paper, Fig. 4: MMD rises with the
number of reversal steps) for trained generators.

For each model, a batch of MNIST test images and a batch generated from the
model's prior are reversed together (``tfgen.ops.reverse``, the paper's lr 1.0
and z0 ~ N(0, (1e-4)^2 I)), and the unbiased MMD_u^2 between the two sets of
codes is printed after T steps for several T and kernels ``exp(-gamma ||z - w||^2)``,
with the per-pixel reconstruction error and the codes' norm: whether, and when,
the paper's test (tau = 1e-4 at gamma = 1e-4) would stop the reversal.

    TFGEN_DATA_DIR=../shared/data .venv/bin/python bench/reversal_mmd.py gan-mnist-mlp runs/kde-gan-mnist-mlp

A benchmark: never part of the test run.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfgen  # noqa: E402
import tfgen.data  # noqa: E402
from tfgen import ops  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="zoo names or run directories (Keras format)")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--steps", type=int, nargs="+", default=[1, 5, 20, 50, 200, 1000])
    p.add_argument("--gammas", type=float, nargs="+", default=[1e-4, 1e-2, 1.0])
    p.add_argument("--lr", type=float, default=1.0)
    args = p.parse_args()

    test = tfgen.data.load_numpy("mnist", "test")[:args.batch]
    for name in args.models:
        model = tfgen.load(name, format="keras")
        x_g = model.generator(model.prior.sample(args.batch, seed=1), training=False)
        print(f"\n{name}: batch {args.batch} test images vs {args.batch} samples, lr {args.lr}\n")
        print("| steps | MSE / pixel | mean code norm | " +
              " | ".join(f"MMD_u² (γ = {g:g})" for g in args.gammas) + " |")
        print("|---" * (3 + len(args.gammas)) + "|")
        for t in args.steps:
            rev = ops.reverse(model.generator, test, steps=t, lr=args.lr, reference=x_g,
                              threshold=float("inf"), gamma=1e-4, seed=tf.constant([0, 1], tf.int32))
            mmds = [float(ops.reversal_mmd2(rev.codes, rev.reference_codes, gamma=g)) for g in args.gammas]
            norm = float(np.mean(np.linalg.norm(rev.codes.numpy(), axis=1)))
            print(f"| {t} | {float(np.mean(rev.error)):.4f} | {norm:.3f} | " +
                  " | ".join(f"{m:.2e}" for m in mmds) + " |")


if __name__ == "__main__":
    main()
