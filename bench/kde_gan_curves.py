"""The KDE-GAN paper's main MNIST comparison (its Fig. 5): classifier Inception
Score (and Fréchet distance on the classifier's features) against training
iterations for the GAN and the KDE-GAN, and the KDE-GAN's reversal steps per
iteration, over several seeds.

Both models are the zoo's MLP recipes (``gan-mnist-mlp``, ``kde-gan-mnist-mlp``:
G 200-256-512-1024-784, D 784-512-256-1, RMSProp 3e-4, batch 100; the KDE-GAN
reverses each data batch beside a generated one for at most 20 steps with the
paper's tau = gamma = 1e-4) with ``seed`` replaced by the run's seed, trained
with ``model.fit`` on the MNIST training set for ``--iterations`` (1800 = 3
epochs, the paper's MNIST length). Every ``--every`` iterations the model draws
``--samples`` images from its current prior (the KDE-GAN: the KDE over the last
batch's reversed codes, the prior its training draws from) and they are scored
on the 512-d features of the zoo's ``lenet-mnist`` classifier: the Inception
Score (10 splits) and the Fréchet distance to as many test images.

The KDE-GAN's reversal loop is XLA-compiled (``reversal_jit_compile``: the same
codes, ``tests/models/test_kde_gan.py``); ``--no-xla`` turns that off.

Resumable: every finished run (model, seed) goes into a JSON cache (default
``docs/kde_gan_curves.json``), written atomically; a restart skips what is
cached. Runs go seed-major (both models of seed 0 first).

    TFGEN_DATA_DIR=../shared/data .venv/bin/python bench/kde_gan_curves.py             # 3 seeds
    TFGEN_DATA_DIR=../shared/data .venv/bin/python bench/kde_gan_curves.py --report-only
    TFGEN_DATA_DIR=../shared/data .venv/bin/python bench/kde_gan_curves.py --quick --out /tmp/c.md

Writes ``docs/kde_gan_curves.md`` (a table of means and standard deviations per
checkpoint, the iterations each model needs to reach given scores) and
``docs/kde_gan_curves.png`` (both curves, mean and the band of +-1 standard
deviation over seeds). A benchmark: never part of the test run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

MODELS = {"gan": ("gan-mnist-mlp", "GAN"), "kde_gan": ("kde-gan-mnist-mlp", "KDE-GAN")}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--iterations", type=int, default=1800)
    p.add_argument("--every", type=int, default=150, help="iterations between evaluations")
    p.add_argument("--samples", type=int, default=5000, help="samples (and test images) per evaluation")
    p.add_argument("--out", default="docs/kde_gan_curves.md")
    p.add_argument("--figure", default=None, help="default: the --out path with .png")
    p.add_argument("--cache", default=None, help="default: the --out path with .json")
    p.add_argument("--no-xla", action="store_true")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 20 iterations, 500 samples")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.iterations, args.every, args.samples = 1, 20, 10, 500
    for name in ("seeds", "iterations", "every"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if args.iterations % args.every:
        p.error("--iterations must be a multiple of --every")
    if args.samples < 100:
        p.error("--samples must be >= 100")
    stem = os.path.splitext(args.out)[0]
    args.figure = args.figure or stem + ".png"
    args.cache = args.cache or stem + ".json"
    return args


def load_cache(path):
    if not os.path.exists(path):
        return []
    try:
        with open(path) as f:
            runs = json.load(f)
    except ValueError as e:
        raise SystemExit(f"--cache: {path} is not valid JSON ({e}); move it away to start afresh")
    if not isinstance(runs, list):
        raise SystemExit(f"--cache: {path} does not hold a list of runs")
    return runs


def save_cache(path, runs):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(runs, f, indent=1)
    os.replace(tmp, path)


def run_one(method, seed, args, x_train, features, real_stats):
    """Train one model, scoring it every ``args.every`` iterations; the run's record."""
    import keras

    import tfgen
    from tfgen.metrics.image import feature_statistics, frechet_distance, inception_score
    from tfgen.trainers import recipes

    recipe = recipes.get(MODELS[method][0]).replace(seed=seed)
    if method == "kde_gan":
        recipe = recipe.replace(model_options={**recipe.model_options,
                                               "reversal_jit_compile": not args.no_xla})
    keras.utils.set_random_seed(seed)
    model = recipes.build_model(recipe, x_train.shape[1:])
    ds = tfgen.data.from_array(x_train, recipe.batch_size, seed=seed, repeat=True)

    def score(step):
        samples = np.asarray(model.sample(args.samples, seed=10_000 + step), np.float32)
        feats, probs = features(samples)
        is_mean, is_std = inception_score(probs)
        mu, sigma = feature_statistics(feats)
        return {"iteration": step, "is": float(is_mean), "is_std": float(is_std),
                "fid": float(frechet_distance(mu, sigma, *real_stats))}

    points, train_s, logs = [score(0)], 0.0, {}
    for done in range(0, args.iterations, args.every):
        t0 = time.perf_counter()
        # the pipeline orders pass e by (seed, e): skipping what was consumed continues the order
        hist = model.fit(ds.skip(done), steps_per_epoch=args.every, epochs=1, verbose=0).history
        train_s += time.perf_counter() - t0
        logs = {k: float(v[-1]) for k, v in hist.items()}
        points.append(score(done + args.every))
        p = points[-1]
        if "reversal_steps" in logs:
            p["reversal_steps"] = logs["reversal_steps"]   # mean over the last `every` iterations
        extra = f", reversal steps {logs['reversal_steps']:.0f}" if "reversal_steps" in logs else ""
        print(f"  {MODELS[method][1]:8s} seed {seed} it {p['iteration']:5d} | IS {p['is']:.2f} "
              f"FID {p['fid']:7.2f} | train {train_s:6.0f} s{extra}", flush=True)
    return {"method": method, "seed": seed, "iterations": args.iterations, "every": args.every,
            "samples": args.samples, "xla": method == "kde_gan" and not args.no_xla,
            "points": points, "train_seconds": train_s, "final_logs": logs}


def _curves(runs, method):
    mine = sorted((r for r in runs if r["method"] == method), key=lambda r: r["seed"])
    if not mine:
        return None, None, None, []
    its = np.array([p["iteration"] for p in mine[0]["points"]])
    is_ = np.array([[p["is"] for p in r["points"]] for r in mine])
    fid = np.array([[p["fid"] for p in r["points"]] for r in mine])
    return its, is_, fid, mine


def first_reaching(its, values, target, higher_is_better=True):
    """The first checkpoint whose value reaches ``target`` (None if none does)."""
    for it, v in zip(its, values):
        if (v >= target) if higher_is_better else (v <= target):
            return int(it)
    return None


def report(args, runs):
    keep = [r for r in runs if r["iterations"] == args.iterations and r["every"] == args.every
            and r["samples"] == args.samples and r["seed"] < args.seeds]
    lines = ["# KDE-GAN against the GAN on MNIST: scores along training", "",
             "Written by `bench/kde_gan_curves.py` "
             f"({datetime.date.today().isoformat()}, {platform.node() or 'this machine'}, CPU). Command:",
             "", "    TFGEN_DATA_DIR=../shared/data python bench/kde_gan_curves.py"
             + (f" --seeds {args.seeds}" if args.seeds != 3 else ""), "",
             f"Protocol: the `gan-mnist-mlp` and `kde-gan-mnist-mlp` recipes with seeds 0..{args.seeds - 1}, "
             f"{args.iterations} iterations of batch 100; every {args.every} iterations {args.samples} "
             f"samples from the model's current prior scored on the `lenet-mnist` features: Inception "
             f"Score (10 splits) and Fréchet distance to {args.samples} test images. The paper "
             "(its Fig. 5, five runs) plots the test-set Inception Score of its DCGANs against iterations; these are the "
             "zoo's MLP variants.", ""]
    summary = {}
    for method in MODELS:
        its, is_, fid, mine = _curves(keep, method)
        if its is None:
            continue
        summary[method] = (its, is_, fid, mine)
    if not summary:
        lines.append("No finished runs yet.")
        return "\n".join(lines) + "\n", summary
    seeds_done = {m: len(v[3]) for m, v in summary.items()}
    lines += [f"Runs finished: " + ", ".join(f"{MODELS[m][1]} {n} seed{'s' if n != 1 else ''}"
                                            for m, n in seeds_done.items()), ""]
    header = "| iteration | " + " | ".join(f"{MODELS[m][1]} IS | {MODELS[m][1]} FID" for m in summary) + " |"
    lines += ["Mean ± standard deviation over seeds:", "", header,
              "|" + "---|" * (1 + 2 * len(summary))]
    its = next(iter(summary.values()))[0]
    for i, it in enumerate(its):
        cells = []
        for m, (_, is_, fid, _) in summary.items():
            cells += [f"{is_[:, i].mean():.2f} ± {is_[:, i].std():.2f}", f"{fid[:, i].mean():.1f} ± {fid[:, i].std():.1f}"]
        lines.append(f"| {it} | " + " | ".join(cells) + " |")
    lines.append("")
    times = {m: np.mean([r["train_seconds"] for r in v[3]]) for m, v in summary.items()}
    lines += ["Training time per run (mean, this shared CPU): "
              + ", ".join(f"{MODELS[m][1]} {t:.0f} s" for m, t in times.items()) + ".", ""]
    if "gan" in summary and "kde_gan" in summary:
        g_its, g_is, g_fid, _ = summary["gan"]
        k_its, k_is, k_fid, _ = summary["kde_gan"]
        lines += ["**Iterations to reach a score** (first checkpoint where the mean over seeds reaches it; "
                  "targets: fractions of the GAN's final mean score):", "",
                  "| target | GAN | KDE-GAN |", "|---|---|---|"]
        final_is, final_fid = g_is[:, -1].mean(), g_fid[:, -1].mean()
        for frac in (0.8, 0.9, 1.0):
            t = final_is * frac
            a, b = first_reaching(g_its, g_is.mean(0), t), first_reaching(k_its, k_is.mean(0), t)
            lines.append(f"| IS ≥ {t:.2f} ({frac:.0%} of the GAN's final) | {a} | {b if b is not None else 'not reached'} |")
        for frac in (1.25, 1.0):
            t = final_fid * frac
            a, b = first_reaching(g_its, g_fid.mean(0), t, False), first_reaching(k_its, k_fid.mean(0), t, False)
            lines.append(f"| FID ≤ {t:.1f} ({frac:.0%} of the GAN's final) | {a} | {b if b is not None else 'not reached'} |")
        lines.append("")
        wins = int(np.sum(k_is[:, -1] > g_is[:, -1].mean())) if k_is.shape[0] else 0
        lines += [f"Final IS per seed: GAN {', '.join(f'{v:.2f}' for v in g_is[:, -1])}; "
                  f"KDE-GAN {', '.join(f'{v:.2f}' for v in k_is[:, -1])} "
                  f"({wins} of {k_is.shape[0]} KDE-GAN seeds above the GAN's mean).", ""]
    lines += [f"Figure: [{os.path.basename(args.figure)}]({os.path.basename(args.figure)}).", ""]
    return "\n".join(lines) + "\n", summary


def figure(path, summary):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for m, (its, is_, fid, mine) in summary.items():
        for ax, v in zip(axes, (is_, fid)):
            mean, std = v.mean(0), v.std(0)
            ax.plot(its, mean, label=f"{MODELS[m][1]} ({len(mine)} seed{'s' if len(mine) != 1 else ''})")
            ax.fill_between(its, mean - std, mean + std, alpha=0.25)
    axes[0].set(xlabel="iteration", ylabel="Inception Score (LeNet)", title="IS ↑")
    axes[1].set(xlabel="iteration", ylabel="Fréchet distance (LeNet features)", title="FID ↓", yscale="log")
    if "kde_gan" in summary:
        its, _, _, mine = summary["kde_gan"]
        steps = np.array([[p.get("reversal_steps", np.nan) for p in r["points"]] for r in mine])
        axes[2].plot(its[1:], np.nanmean(steps[:, 1:], 0), color="C1", label="KDE-GAN")
        axes[2].set(xlabel="iteration", ylabel="reversal steps per iteration (mean over the last "
                    f"{its[1] - its[0]})", title="reversal steps (stopping test or cap)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    runs = load_cache(args.cache)
    if not args.report_only:
        import tfgen
        from tfgen.metrics import FeatureNetwork
        from tfgen.metrics.image import feature_statistics

        x_train = tfgen.data.load_numpy("mnist", "train")
        x_test = tfgen.data.load_numpy("mnist", "test")[:args.samples]
        net = FeatureNetwork.load("lenet-mnist")
        real_stats = feature_statistics(net.outputs(x_test)[0])
        done = {(r["method"], r["seed"]) for r in runs if r["iterations"] == args.iterations
                and r["every"] == args.every and r["samples"] == args.samples}
        todo = [(s, m) for s in range(args.seeds) for m in MODELS if (m, s) not in done]
        print(f"{len(todo)} runs to do ({len(done)} cached in {args.cache})", flush=True)
        for seed, method in todo:
            t0 = time.perf_counter()
            runs.append(run_one(method, seed, args, x_train, net.outputs, real_stats))
            save_cache(args.cache, runs)
            print(f"{MODELS[method][1]} seed {seed} done in {time.perf_counter() - t0:.0f} s", flush=True)
    text, summary = report(args, runs)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    if summary:
        figure(args.figure, summary)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
