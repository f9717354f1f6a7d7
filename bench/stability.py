"""Stability study of every ring-of-8 method (the GRAM paper's Figure 2 grid).

The GRAM paper (§3.4, Figure 2, App. Figure 6) trains GRAM-nets, MMD-nets and
GANs on the ring of 8 Gaussians in 12 settings: noise dimension h in
{2, 4, 8, 16} x hidden-layer width H in {20, 100, 200}. This script runs the
same grid for every method of the zoo that has a ``*-ring8`` recipe:

    GAN, WGAN-GP, MMD-net, MMD-GAN, GRAM-net, Level Set GAN, SGN, KDE-GAN

Each run is the method's recipe with ``latent_dim=h`` (the recipe's prior
family kept: the Level Set GAN's U[-1, 1]^h, the KDE-GAN's KDE over h-d
codes) and H as the width of *both* hidden layers of *every* network the
method has (generator, critic / discriminator / encoder, MMD-GAN's decoder),
trained for a fixed number of ``fit`` steps (``model.train_steps``), then
scored on 2500 samples with ``tfgen.metrics.toy_mode_stats(samples,
"ring8")`` (VEEGAN protocol: modes covered of 8, high-quality rate).

The grid is 8 methods x 12 settings x 3 seeds = 288 runs of 10-200 s each on
a 2-core CPU, so the study is resumable: every finished run goes into a JSON
cache (default ``docs/stability_runs.json``, the raw data), keyed by (method,
h, H, seed, steps), written atomically after each run; a restart skips what
is cached. Runs go seed-major (seed 0 of every method and setting first), so
an interrupted study still has one full seed.

    .venv/bin/python bench/stability.py                        # the full grid: 8 methods, 3 seeds, 2000 steps
    .venv/bin/python bench/stability.py --report-only          # rebuild the report and figure from the cache
    .venv/bin/python bench/stability.py --quick --out /tmp/stab.md   # smoke run (20 steps, temp cache)
    .venv/bin/python bench/stability.py --methods gan,gram --seeds 1 --steps 4000

Writes ``docs/stability.md`` (protocol, a summary table, one 3x4 table per
method, reference scores, per-run detail) and ``docs/stability.png`` (methods
as rows, the 12 settings as columns, first seed). A benchmark: never part of
the test run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

NOISE_DIMS = (2, 4, 8, 16)
HIDDEN_SIZES = (20, 100, 200)
# method -> (recipe, label), in the report's order
METHODS = {
    "gan": ("gan-ring8", "GAN"),
    "wgan_gp": ("wgan-gp-ring8", "WGAN-GP"),
    "mmd_net": ("mmd-net-ring8", "MMD-net"),
    "mmd_gan": ("mmd-gan-ring8", "MMD-GAN"),
    "gram": ("gram-ring8", "GRAM-net"),
    "level_set": ("level-set-ring8", "Level Set GAN"),
    "sgn": ("sgn-ring8", "SGN"),
    "kde_gan": ("kde-gan-ring8", "KDE-GAN"),
}
# What one fit step (one `train_step`, one tick of `model.train_steps`) does.
FIT_STEP = {
    "gan": "1 discriminator + 1 generator update",
    "wgan_gp": "n_critic = 5 critic updates (5 strided slices of 200) + 1 generator update",
    "mmd_net": "1 generator update",
    "mmd_gan": "5 encoder/decoder updates on 5 slices of 200 + 1 generator update on the 6th",
    "gram": "1 critic + 1 generator update (simultaneous)",
    "level_set": "1 critic update + n_gen = 5 generator updates (fresh codes each)",
    "sgn": "1 generator update (1-NN matching against a fresh pool)",
    "kde_gan": "reversal of the batch (<= 50 steps), KDE refit, 1 discriminator + 1 generator update",
}
DEFAULT_STEPS = 2000
QUICK_STEPS = 20
N_EVAL = 2500          # samples scored per run (VEEGAN protocol)
N_KEEP = 300           # samples kept per run in the cache, for the figure
EVAL_SEED_OFFSET = 12345
DEFAULT_CACHE = "docs/stability_runs.json"
CACHE_FORMAT = 1
SMEARED_REF = "uniform on the circle, radial noise std 0.2 (a smeared ring, no modes)"


# -- command line ------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated subset of {','.join(METHODS)} (default all)")
    p.add_argument("--seeds", type=int, default=3,
                   help="seeds per setting; seed i sets the recipe seed, the data seed and "
                        "keras.utils.set_random_seed to recipe.seed + i (default 3)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"fit steps per run, counted by model.train_steps (default {DEFAULT_STEPS}; "
                        f"--quick: {QUICK_STEPS})")
    p.add_argument("--noise-dims", default=",".join(map(str, NOISE_DIMS)),
                   help="comma-separated noise dimensions h (default 2,4,8,16)")
    p.add_argument("--hidden", default=",".join(map(str, HIDDEN_SIZES)),
                   help="comma-separated hidden widths H (default 20,100,200)")
    p.add_argument("--out", default="docs/stability.md", help="markdown report (default %(default)s)")
    p.add_argument("--figure", default=None,
                   help="scatter-plot figure (default: the report's path with .png)")
    p.add_argument("--cache", default=None,
                   help=f"JSON cache of finished runs (default {DEFAULT_CACHE}; --quick: a fresh "
                        "temporary file)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: rebuild the report and figure from the cache")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK_STEPS} steps, h in {{2, 16}} x H in {{20}}, 1 seed, a temporary "
                        "cache; writes no report unless --out is given explicitly")
    args = p.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    given = {a.split("=")[0] for a in argv if a.startswith("--")}

    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in args.methods:
        if m not in METHODS:
            p.error(f"--methods: unknown method {m!r}; expected a subset of {','.join(METHODS)}")
    if not args.methods:
        p.error("--methods: expected at least one method")
    try:
        args.noise_dims = [int(v) for v in args.noise_dims.split(",")]
        args.hidden = [int(v) for v in args.hidden.split(",")]
    except ValueError as e:
        p.error(f"--noise-dims / --hidden: expected comma-separated integers ({e})")
    if min(args.noise_dims) < 1 or min(args.hidden) < 1:
        p.error("--noise-dims / --hidden: expected positive integers")
    if args.quick:
        if "--noise-dims" not in given:
            args.noise_dims = [2, 16]
        if "--hidden" not in given:
            args.hidden = [20]
        if "--seeds" not in given:
            args.seeds = 1
    if args.steps is None:
        args.steps = QUICK_STEPS if args.quick else DEFAULT_STEPS
    if args.steps < 1:
        p.error("--steps must be >= 1")
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    args.write_report = not args.quick or "--out" in given
    if args.cache is None:
        args.cache = (os.path.join(tempfile.mkdtemp(prefix="tfgen-stability-"), "runs.json")
                      if args.quick else DEFAULT_CACHE)
    if args.report_only and not os.path.exists(args.cache):
        p.error(f"--report-only: no cache at {args.cache}")
    args.figure = args.figure or os.path.splitext(args.out)[0] + ".png"
    args.command = "python bench/stability.py " + " ".join(argv)
    return args


def settings_of(args) -> list[tuple[int, int]]:
    """The (h, H) grid, H-major: the order of the tables' rows and the figure's columns."""
    return [(h, width) for width in args.hidden for h in args.noise_dims]


# -- the cache ---------------------------------------------------------------------------------

def run_key(method: str, h: int, width: int, seed: int, steps: int) -> str:
    return f"{method}|h={h}|H={width}|seed={seed}|steps={steps}"


def _to_json(obj):
    """Strict JSON: non-finite floats become the strings "nan", "inf", "-inf"."""
    if isinstance(obj, dict):
        return {k: _to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else str(v)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _from_json(obj):
    if isinstance(obj, dict):
        return {k: _from_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_json(v) for v in obj]
    if obj in ("nan", "inf", "-inf"):
        return float(obj)
    return obj


def load_cache(path: str) -> dict:
    """``{key: run}`` from the cache at ``path`` (empty when there is none)."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"--cache: {path} is not valid JSON ({e}); move it away to start afresh") from None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("runs"), dict):
        raise ValueError(f"--cache: {path} is not a bench/stability.py cache (format {CACHE_FORMAT})")
    return _from_json(data["runs"])


def save_cache(path: str, runs: dict) -> None:
    """Write atomically (beside, then ``os.replace``), one run per line so diffs stay readable."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    order = {m: i for i, m in enumerate(METHODS)}
    keys = sorted(runs, key=lambda k: (runs[k]["steps"], runs[k]["seed"], order.get(runs[k]["method"], 99),
                                       runs[k]["hidden"], runs[k]["h"]))
    body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(_to_json(runs[k]), separators=(',', ':'), allow_nan=False)}"
                      for k in keys)
    text = (f'{{"format": {CACHE_FORMAT}, "script": "bench/stability.py", '
            f'"note": "one finished run per line; samples: the first {N_KEEP} of the {N_EVAL} scored", '
            f'"runs": {{\n{body}\n}}}}\n')
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# -- one run -----------------------------------------------------------------------------------

def setting_recipe(method: str, h: int, width: int, seed_index: int, steps: int):
    """The method's ring-8 recipe in setting (h, H): ``latent_dim=h`` (prior family and options
    kept) and every network's hidden layers ``(H, H)``."""
    from tfgen.trainers import recipes

    base = recipes.get(METHODS[method][0])
    changes = dict(latent_dim=h, seed=base.seed + seed_index, steps=steps,
                   generator=dataclasses.replace(base.generator, hidden=(width, width)))
    for net in ("critic", "decoder"):
        spec = getattr(base, net)
        if spec is not None:
            changes[net] = dataclasses.replace(spec, hidden=(width, width))
    return base.replace(**changes)


def _stop_on_non_finite():
    import keras

    class StopOnNonFinite(keras.callbacks.Callback):
        """Stop at the end of a logging period whose losses went NaN/Inf: the rest of the
        budget would only cost time (the run is scored as diverged)."""

        def on_epoch_end(self, epoch, logs=None):
            if any(not math.isfinite(float(v)) for v in (logs or {}).values()):
                self.model.stop_training = True

    return StopOnNonFinite()


def run_one(recipe) -> dict:
    """Train, (KDE-GAN) fit the learned prior, sample, score. Returns a cache record's body."""
    import keras
    import tensorflow as tf
    import tfgen
    from tfgen.trainers import recipes

    keras.utils.set_random_seed(recipe.seed)
    model = recipes.build_model(recipe, (2,))
    ds = tfgen.data.load(recipe.dataset, batch_size=recipe.batch_size, repeat=True, seed=recipe.seed)
    spe = min(recipe.steps_per_epoch, recipe.steps)
    epochs, rest = divmod(recipe.steps, spe)
    history, error = {}, None
    t0 = time.perf_counter()
    try:
        # shuffle=False: the dataset shuffles itself
        history = model.fit(ds, steps_per_epoch=spe, epochs=epochs, verbose=0, shuffle=False,
                            callbacks=[_stop_on_non_finite()]).history
        if rest and not model.stop_training:  # a budget that is not a multiple of the logging period
            model.fit(ds, steps_per_epoch=rest, epochs=1, verbose=0, shuffle=False)
    except tf.errors.OpError as e:  # e.g. a Cholesky of a NaN Gram matrix: the run diverged
        error = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    train_s = time.perf_counter() - t0

    prior_fit, prior_s, stats_training_prior = None, 0.0, None
    if hasattr(model, "fit_prior") and error is None:
        # for the record: the score with the prior as training left it (the last batch's codes)
        before = np.asarray(model.sample(N_EVAL, seed=recipe.seed + EVAL_SEED_OFFSET), np.float64)
        stats_training_prior = tfgen.metrics.toy_mode_stats(before, recipe.dataset)
        # as Trainer.fit_learned_prior: the KDE over the codes of a seeded shuffle of training
        # points (without it the prior holds only the last batch's codes); the points are drawn
        # with the run's data seed, as its training stream was
        t1 = time.perf_counter()
        x = tfgen.data.load_numpy(recipe.dataset, recipe.train_split, seed=recipe.seed)
        x = x[np.random.default_rng(recipe.seed).permutation(len(x))[:model.prior.capacity]]
        try:
            prior_fit = model.fit_prior(x, seed=recipe.seed)
        except tf.errors.OpError as e:
            error = f"fit_prior: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
        prior_s = time.perf_counter() - t1

    t2 = time.perf_counter()
    try:
        samples = np.asarray(model.sample(N_EVAL, seed=recipe.seed + EVAL_SEED_OFFSET), np.float64)
    except tf.errors.OpError as e:
        error = error or f"sample: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
        samples = np.full((N_EVAL, 2), np.nan)
    sample_s = time.perf_counter() - t2

    stats = tfgen.metrics.toy_mode_stats(samples, recipe.dataset)
    losses_finite = all(np.all(np.isfinite(v)) for v in history.values())
    steps_done = int(model.train_steps.numpy())
    del model
    keras.backend.clear_session()
    keep = np.round(samples[:N_KEEP], 2) + 0.0  # 0.01 is finer than a scatter plot shows; + 0.0: no -0.0
    return dict(
        stats=stats, diverged=bool(stats["diverged"] or not losses_finite or error is not None),
        losses_finite=bool(losses_finite), error=error, steps_done=steps_done,
        train_s=round(train_s, 2), prior_fit_s=round(prior_s, 2), sample_s=round(sample_s, 2),
        prior_fit=prior_fit, stats_training_prior=stats_training_prior,
        last_logs={k: float(v[-1]) for k, v in history.items() if len(v)},
        samples=[[None if not math.isfinite(c) else float(c) for c in row] for row in keep.tolist()],
    )


# -- scoring -----------------------------------------------------------------------------------

def references() -> dict:
    """Scores of reference sample sets: what the metric gives the data itself, and what it gives
    mass spread evenly along the circle (no modes at all)."""
    import tfgen

    rng = np.random.default_rng(0)
    angle = rng.uniform(0.0, 2.0 * np.pi, N_EVAL)
    info = tfgen.data.info("ring8")
    radius, std = float(np.linalg.norm(info["centers"][0])), info["std"]

    def circle(rad):
        return np.stack([rad * np.cos(angle), rad * np.sin(angle)], 1)

    sets = {
        f"ring8 test data ({N_EVAL} points)": tfgen.data.load_numpy("ring8", split="test", n=N_EVAL, seed=0),
        SMEARED_REF: circle(radius + std * rng.standard_normal(N_EVAL)),
        "uniform on the circle, exactly radius 2 (no modes)": circle(np.full(N_EVAL, radius)),
    }
    return {name: tfgen.metrics.toy_mode_stats(x, "ring8") for name, x in sets.items()}


def converged(r) -> bool:
    return not r["diverged"] and r["stats"]["modes_covered"] == r["stats"]["n_modes"]


def collapse_reason(r, hq_floor: float) -> str | None:
    """Why a finite run counts as collapsed (None: it does not; diverged runs are counted apart)."""
    if r["diverged"]:
        return None
    s = r["stats"]
    if s["modes_covered"] < s["n_modes"]:
        return "modes"
    if s["high_quality_rate"] < hq_floor:
        return "HQ"
    return None


def method_summary(rows: list[dict], settings, hq_floor: float) -> dict:
    conv_settings = 0
    for (h, width) in settings:
        runs = [r for r in rows if r["h"] == h and r["hidden"] == width]
        conv_settings += bool(runs) and all(converged(r) for r in runs)
    reasons = [collapse_reason(r, hq_floor) for r in rows]
    return dict(
        runs=len(rows), conv_settings=conv_settings, conv_runs=sum(converged(r) for r in rows),
        mean_modes=float(np.mean([r["stats"]["modes_covered"] for r in rows])),
        mean_hq=float(np.mean([r["stats"]["high_quality_rate"] for r in rows])),
        diverged=sum(r["diverged"] for r in rows),
        collapsed=sum(x is not None for x in reasons), collapsed_modes=reasons.count("modes"),
        mean_s=float(np.mean([r["train_s"] + r["prior_fit_s"] for r in rows])),
    )


# -- the report --------------------------------------------------------------------------------

def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _fmt_opt(o) -> str:
    text = f"{o.name} {o.learning_rate:g}"
    if o.name == "adam":
        text += f" (beta1 {o.beta_1:g}, beta2 {o.beta_2:g})"
    return text


def _prior_text(rec) -> str:
    if rec.prior == "gaussian":
        return "N(0, I_h)"
    if rec.prior == "uniform":
        return f"U[{rec.prior_options.get('low', 0):g}, {rec.prior_options.get('high', 1):g}]^h"
    if rec.prior == "kde":
        return (f"KDE over h-d codes (bandwidth {rec.prior_options.get('bandwidth')}, capacity "
                f"{rec.prior_options.get('capacity')}; N(0, I_h) background)")
    return rec.prior


def recipes_table(methods) -> list[str]:
    from tfgen.trainers import recipes

    lines = ["| method | recipe | optimiser (G; critic) | data batch per fit step | one fit step | prior | "
             "options |", "|---|---|---|---|---|---|---|"]
    for m in methods:
        rec = recipes.get(METHODS[m][0])
        opt = _fmt_opt(rec.optimizer)
        if rec.critic is not None or rec.decoder is not None:
            opt += "; " + ("same" if rec.critic_optimizer is None else _fmt_opt(rec.critic_optimizer))
        nets = "G" + (", critic" if rec.critic is not None else "") + (", decoder" if rec.decoder else "")
        options = ", ".join(f"{k} {v}" for k, v in rec.model_options.items()) or "-"
        lines.append(f"| {METHODS[m][1]} | `{rec.name}` ({nets}) | {opt} | {rec.batch_size} | {FIT_STEP[m]} | "
                     f"{_prior_text(rec)} | {options} |")
    return lines


def cell(runs: list[dict], hq_floor: float) -> str:
    """A table cell: modes / 8 and HQ rate (means over seeds), with divergence and collapse counts."""
    n_modes = runs[0]["stats"]["n_modes"]
    modes = [r["stats"]["modes_covered"] for r in runs]
    hq = np.mean([r["stats"]["high_quality_rate"] for r in runs])
    div = sum(r["diverged"] for r in runs)
    col = sum(collapse_reason(r, hq_floor) is not None for r in runs)
    if len(runs) == 1:
        text = f"{modes[0]}/{n_modes}, {100 * hq:.0f}%"
        return text + (" **NaN**" if div else "") + (" *coll.*" if col else "")
    text = f"{np.mean(modes):.1f}/{n_modes} ({sum(converged(r) for r in runs)}/{len(runs)} conv), {100 * hq:.0f}%"
    return text + (f" **NaN x{div}**" if div else "") + (f" *coll. x{col}*" if col else "")


def markdown(args, runs: list[dict], refs: dict, figure_rel: str | None) -> str:
    import keras
    import tensorflow as tf

    settings = settings_of(args)
    hq_floor = refs[SMEARED_REF]["high_quality_rate"]
    methods = [m for m in args.methods if any(r["method"] == m for r in runs)]
    expected = len(settings) * args.seeds
    compute_s = sum(r["train_s"] + r["prior_fit_s"] + r["sample_s"] for r in runs)
    dates = sorted(r["finished"] for r in runs)
    lines = ["# Stability of every ring-of-8 method (GRAM paper, Figure 2 grid)", "",
             "Generated by `bench/stability.py` (a benchmark: not part of the test run) from the run "
             f"cache `{args.cache}`.", "",
             f"- command: `{args.command}`",
             f"- report built: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}; runs finished "
             f"{dates[0][:16]} to {dates[-1][:16]}" if dates else "- no runs",
             f"- machine: {os.cpu_count()} CPU cores (`nproc`: {len(os.sched_getaffinity(0))}), "
             f"{platform.machine()}, Python {platform.python_version()}, TensorFlow {tf.__version__}, "
             f"Keras {keras.__version__}",
             f"- runs in this report: {len(runs)} of {expected * len(methods)} "
             f"({len(methods)} methods x {len(settings)} settings x {args.seeds} seed{'s' if args.seeds > 1 else ''}); "
             f"their compute time (train + prior fit + sampling): {_duration(compute_s)}", "",
             "## Protocol", "",
             "- data: `ring8` (8 Gaussians on a circle of radius 2, std 0.2), "
             "`tfgen.data.load(\"ring8\", batch_size=recipe.batch_size, repeat=True, seed=seed)`.",
             f"- settings: noise dimension h in {{{', '.join(map(str, args.noise_dims))}}} x hidden width "
             f"H in {{{', '.join(map(str, args.hidden))}}} ({len(settings)} settings). H is the width of "
             "*both* hidden layers of *every* network of the method: the generator h -> H -> H -> 2, the "
             "critic / discriminator / encoder 2 -> H -> H -> (1 or K), and MMD-GAN's decoder "
             "K -> H -> H -> 2 (the paper's caption varies \"the hidden layer size of the critic\", its text "
             "generator capacity, so all are varied together). MMD-net and SGN have no critic: only their "
             "generator changes.",
             "- models: each method's ring-8 recipe with `recipe.replace(latent_dim=h, generator=..., "
             "critic=..., decoder=..., seed=..., steps=...)`, everything else as the recipe has it. The "
             "prior family is the recipe's: h only sets its dimension (the Level Set GAN keeps its uniform "
             "noise, so its h = 2 column is its recipe's own setting; the KDE-GAN's KDE prior holds h-d "
             "codes).", ""]
    lines += recipes_table(methods)
    lines += ["",
              f"- budget: **{args.steps} fit steps per run for every method**, counted by "
              "`model.train_steps` (`--steps`; the recipes' own budget is 4000). A fit step is one "
              "`train_step` call, i.e. one generator iteration for every method but the Level Set GAN, "
              "whose fit step is one critic update followed by n_gen = 5 generator updates (its "
              "`train_steps` counts critic updates). WGAN-GP and MMD-GAN draw a dataset batch of "
              "5 x 200 and 6 x 200 points per fit step (one slice of 200 per update), the others 200. "
              "So the budget is equal in generator iterations (x5 generator updates for the Level Set "
              "GAN), not in updates, data or time; the time column says what each cost.",
              f"- training: `model.fit(ds, steps_per_epoch={min(100, args.steps)}, "
              f"epochs={args.steps // min(100, args.steps)}, verbose=0)` (the recipes' logging period "
              "of 100 steps); a run whose logged losses turn NaN/Inf is stopped at the end of that "
              "period (it is scored as diverged; the per-run steps column shows where it stopped).",
              "- KDE-GAN: after `fit`, `model.fit_prior(x)` on the first `prior.capacity` (2000) points "
              "of a seeded permutation of the ring8 training split drawn with the run's data seed, as "
              "`Trainer.fit_learned_prior` does, so samples come from the KDE over the codes of 2000 "
              "training points rather than of the last batch. Its time is added to the train time. "
              "Note what this measures: each KDE centre is the code of a training point found by "
              "reversal, so a generator that can reconstruct the training points samples close to "
              "them whatever its fit on the prior; the KDE-GAN's HQ rate mostly measures reversal "
              "(its grid also gives the score with the training-time prior).",
              f"- seeds: {args.seeds} per setting; seed i (0..{args.seeds - 1}) sets the recipe seed "
              "(the model's draws), the data seed and `keras.utils.set_random_seed` (initial weights).",
              f"- score: `tfgen.metrics.toy_mode_stats(model.sample({N_EVAL}, seed=seed + "
              f"{EVAL_SEED_OFFSET}), \"ring8\")`, the VEEGAN protocol: a sample is high quality (HQ) "
              "within 3 std (0.6) of its nearest centre; a mode is covered with >= 20 of 2500 HQ "
              "samples.",
              "- **converged**: a finite run with all 8 modes covered. A setting is converged when "
              "every seed run in it is.",
              "- **diverged** (**NaN**): non-finite samples or logged losses, or a TensorFlow error "
              "during training (a failed Cholesky, ...).",
              f"- **collapsed** (*coll.*): a finite run that covers fewer than 8 modes, *or* whose HQ "
              f"rate is below {100 * hq_floor:.1f}%, the HQ rate of mass spread evenly along a smeared "
              "ring with no modes at all (reference scores below). The first is mode dropping; the "
              "second means the samples concentrate on the modes no better than a ring does (smeared, "
              "or mass off the circle). The summary counts both and, in brackets, the first.", ""]

    lines += ["## Summary", "",
              f"| method | runs | settings converged (8/8 in all seeds) of {len(settings)} | runs with 8/8 | "
              "mean modes | mean HQ % | diverged runs | collapsed runs (< 8 modes) | mean train s per run |",
              "|---|---|---|---|---|---|---|---|---|"]
    summaries = {}
    for m in methods:
        rows = [r for r in runs if r["method"] == m]
        s = summaries[m] = method_summary(rows, settings, hq_floor)
        lines.append(f"| {METHODS[m][1]} | {s['runs']}/{expected} | {s['conv_settings']} | "
                     f"{s['conv_runs']}/{s['runs']} | {s['mean_modes']:.2f} | {100 * s['mean_hq']:.1f} | "
                     f"{s['diverged']} | {s['collapsed']} ({s['collapsed_modes']}) | {s['mean_s']:.0f} |")
    lines += ["", "Train s: `model.fit` wall time (+ the prior fit for the KDE-GAN) on this machine, "
              "which other work shared: compare orders of magnitude, not percent.", ""]

    lines += ["## Per-method grids", "",
              "Rows: hidden width H; columns: noise dimension h. Cells: modes covered / 8, HQ rate"
              + (" (means over seeds; conv = seeds with 8/8)" if args.seeds > 1 else "")
              + "; **NaN** diverged, *coll.* collapsed.", ""]
    for m in methods:
        rows = [r for r in runs if r["method"] == m]
        s = summaries[m]
        lines += [f"### {METHODS[m][1]}", "",
                  "| hidden H \\ noise h | " + " | ".join(f"h = {h}" for h in args.noise_dims) + " |",
                  "|---|" + "---|" * len(args.noise_dims)]
        for width in args.hidden:
            cells = []
            for h in args.noise_dims:
                sel = [r for r in rows if r["h"] == h and r["hidden"] == width]
                cells.append(cell(sel, hq_floor) if sel else "-")
            lines.append(f"| H = {width} | " + " | ".join(cells) + " |")
        lines += ["", f"**{METHODS[m][1]}: converged in {s['conv_settings']} of {len(settings)} settings** "
                  f"({s['conv_runs']} of {s['runs']} runs); diverged {s['diverged']}, collapsed "
                  f"{s['collapsed']}; mean HQ rate {100 * s['mean_hq']:.0f}%.", ""]
        before = [r["stats_training_prior"] for r in rows if r.get("stats_training_prior")]
        if before:
            lines += [f"Scored with the prior as training left it (the KDE over the last batch's "
                      f"{rows[0]['batch_size']} codes) instead of the fitted one: mean modes "
                      f"{np.mean([b['modes_covered'] for b in before]):.2f}, mean HQ rate "
                      f"{100 * np.mean([b['high_quality_rate'] for b in before]):.0f}% "
                      f"({len(before)} runs).", ""]

    lines += ["## Reference scores", "",
              "The same metric on reference sample sets. With std 0.2 the 8 HQ discs (radius 0.6) cover "
              "about 77% of the circle, so mass spread evenly along the ring, with no modes at all, "
              "already scores 8/8 and an HQ rate in the 70s. **The converged count therefore does not "
              "separate mode-seeking from ring-smearing here; the HQ rate against these references, the "
              "collapse count and the figure do.**", "",
              "| reference set | modes | HQ % | KL(modes \\|\\| uniform) |", "|---|---|---|---|"]
    for name, s in refs.items():
        lines.append(f"| {name} | {s['modes_covered']}/{s['n_modes']} | {100 * s['high_quality_rate']:.1f} | "
                     f"{s['kl_to_uniform_modes']:.3f} |")

    if figure_rel:
        lines += ["", "## Samples", "", f"![samples of every method and setting]({figure_rel})", "",
                  f"Rows: methods; columns: the {len(settings)} settings (h, H). The first {N_KEEP} of the "
                  f"{N_EVAL} scored samples of the first seed per panel, red crosses at the 8 centres; "
                  "panel title: modes covered, HQ rate; a red title marks a diverged or collapsed run."]

    lines += ["", "## Per-run detail", "",
              "KL: KL(HQ samples' mode histogram || uniform), 0 = balanced. Last logs and the samples "
              f"kept are in `{os.path.basename(args.cache)}`.", "",
              "| method | h | H | seed | steps | modes | HQ % | KL | diverged | collapsed | train s |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        s = r["stats"]
        why = collapse_reason(r, hq_floor)
        div = "yes" + (f" ({r['error'][:60]})" if r.get("error") else "") if r["diverged"] else "no"
        lines.append(f"| {METHODS[r['method']][1]} | {r['h']} | {r['hidden']} | {r['seed']} | {r['steps_done']} | "
                     f"{s['modes_covered']}/{s['n_modes']} | {100 * s['high_quality_rate']:.1f} | "
                     f"{s['kl_to_uniform_modes']:.3f} | {div} | "
                     f"{ {None: 'no', 'modes': 'yes (< 8 modes)', 'HQ': 'yes (HQ)'}[why] } | "
                     f"{r['train_s'] + r['prior_fit_s']:.0f} |")

    lines += ["", "## What the paper claims", "",
              "GRAM paper §3.4, Figure 2 and App. Figure 6: \"GRAM training successfully converged in all 12 "
              "settings\"; GANs failed in every one (half of them diverged); MMD-nets \"can also capture all "
              "modes, but the learned distribution is less separated (or sharp)\" because their kernel is "
              "fixed and acts in data space. The other methods were not in that figure: their rows here "
              "use the same grid and budget with each method's own published optimiser (recipe table "
              "above). Read converged counts against the collapse count and the reference HQ rates.", ""]
    return "\n".join(lines)


def figure(args, runs: list[dict], refs: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tfgen

    centers = tfgen.data.info("ring8")["centers"]
    hq_floor = refs[SMEARED_REF]["high_quality_rate"]
    settings = settings_of(args)
    methods = [m for m in args.methods if any(r["method"] == m for r in runs)]
    size = 1.3
    fig, axes = plt.subplots(len(methods), len(settings), squeeze=False,
                             figsize=(size * len(settings) + 0.6, size * len(methods) + 0.5))
    for i, m in enumerate(methods):
        for j, (h, width) in enumerate(settings):
            ax = axes[i, j]
            ax.set_xlim(-3.2, 3.2)
            ax.set_ylim(-3.2, 3.2)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.text(0.5, 1.32, f"h={h}, H={width}", transform=ax.transAxes, ha="center",
                        va="bottom", fontsize=8, fontweight="bold")
            if j == 0:
                ax.set_ylabel(METHODS[m][1], fontsize=9, fontweight="bold")
            sel = sorted((r for r in runs if r["method"] == m and r["h"] == h and r["hidden"] == width),
                         key=lambda r: r["seed"])
            if not sel:
                ax.set_title("not run", fontsize=7, color="gray")
                continue
            r = sel[0]
            x = np.asarray(r["samples"], dtype=float).reshape(-1, 2)
            x = x[np.all(np.isfinite(x), axis=1)]
            ax.scatter(x[:, 0], x[:, 1], s=1.0, alpha=0.5, color="tab:blue", rasterized=True)
            ax.scatter(centers[:, 0], centers[:, 1], s=14, marker="x", color="red", linewidths=0.8)
            s = r["stats"]
            bad = r["diverged"] or collapse_reason(r, hq_floor) is not None
            ax.set_title(f"{s['modes_covered']}/8, {100 * s['high_quality_rate']:.0f}%"
                         + (" NaN" if r["diverged"] else ""), fontsize=7, color="red" if bad else "black")
    fig.tight_layout(pad=0.3, h_pad=0.4, w_pad=0.2)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100, bbox_inches="tight", pad_inches=0.1)  # "tight": keeps the column heads
    plt.close(fig)
    os.replace(tmp, path)


def write_report(args, cache: dict) -> list[dict]:
    """The report and figure of the runs in ``cache`` that belong to this grid."""
    settings = set(settings_of(args))
    runs = [r for r in cache.values()
            if r["method"] in args.methods and (r["h"], r["hidden"]) in settings
            and r["seed_index"] < args.seeds and r["steps"] == args.steps]
    order = {m: i for i, m in enumerate(args.methods)}
    runs.sort(key=lambda r: (r["seed"], r["hidden"], r["h"], order[r["method"]]))
    if not runs:
        print(f"no cached runs for this grid in {args.cache}: nothing to report", flush=True)
        return runs
    refs = references()
    figure(args, runs, refs, args.figure)
    text = markdown(args, runs, refs, os.path.relpath(args.figure, os.path.dirname(os.path.abspath(args.out))))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, args.out)
    print(f"wrote {args.out} and {args.figure} ({len(runs)} runs)", flush=True)
    return runs


def print_summary(args, cache: dict) -> None:
    settings = settings_of(args)
    hq_floor = references()[SMEARED_REF]["high_quality_rate"]
    for m in args.methods:
        rows = [r for r in cache.values() if r["method"] == m and r["steps"] == args.steps
                and r["seed_index"] < args.seeds and (r["h"], r["hidden"]) in set(settings)]
        if not rows:
            continue
        s = method_summary(rows, settings, hq_floor)
        print(f"{METHODS[m][1]:>13}: converged {s['conv_settings']:2d}/{len(settings)} settings, "
              f"{s['conv_runs']}/{s['runs']} runs 8/8, mean modes {s['mean_modes']:.2f}, "
              f"HQ {100 * s['mean_hq']:.1f}%, diverged {s['diverged']}, collapsed {s['collapsed']} "
              f"({s['collapsed_modes']} < 8 modes), {s['mean_s']:.0f} s/run", flush=True)


# -- main --------------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")

    cache = load_cache(args.cache)
    if not args.report_only:
        todo = [(s, h, width, m) for s in range(args.seeds) for (h, width) in settings_of(args)
                for m in args.methods]
        todo = [t for t in todo
                if run_key(t[3], t[1], t[2], setting_recipe(t[3], t[1], t[2], t[0], args.steps).seed,
                           args.steps) not in cache]
        n_total = len(settings_of(args)) * len(args.methods) * args.seeds
        print(f"{n_total} runs in the grid ({len(args.methods)} methods x {len(settings_of(args))} settings x "
              f"{args.seeds} seed{'s' if args.seeds > 1 else ''}, {args.steps} steps); "
              f"{n_total - len(todo)} cached in {args.cache}, {len(todo)} to run", flush=True)
        t_start = time.perf_counter()
        for k, (s, h, width, m) in enumerate(todo):
            recipe = setting_recipe(m, h, width, s, args.steps)
            out = run_one(recipe)
            cache[run_key(m, h, width, recipe.seed, args.steps)] = dict(
                method=m, recipe=recipe.name, h=h, hidden=width, seed=recipe.seed, seed_index=s,
                steps=args.steps, batch_size=recipe.batch_size, prior=recipe.prior,
                finished=datetime.datetime.now().isoformat(timespec="seconds"), **out)
            save_cache(args.cache, cache)
            st, left = out["stats"], len(todo) - k - 1
            # remaining time from each method's mean cost in the cache
            cost = {mm: np.mean([r["train_s"] + r["prior_fit_s"] + r["sample_s"] for r in cache.values()
                                 if r["method"] == mm and r["steps"] == args.steps] or [np.nan])
                    for mm in args.methods}
            fallback = np.nanmean(list(cost.values()))
            eta = sum(cost[t[3]] if np.isfinite(cost[t[3]]) else fallback for t in todo[k + 1:])
            flag = " DIVERGED" if out["diverged"] else ""
            flag += f" ({out['error'][:80]})" if out["error"] else ""
            print(f"[{k + 1}/{len(todo)}] {m:9s} h={h:2d} H={width:3d} seed={recipe.seed} steps={out['steps_done']} "
                  f"| modes {st['modes_covered']}/{st['n_modes']} HQ {100 * st['high_quality_rate']:5.1f}%"
                  f"{flag} | {out['train_s'] + out['prior_fit_s'] + out['sample_s']:6.1f} s | {left} left, "
                  f"eta {_duration(eta)}, elapsed {_duration(time.perf_counter() - t_start)}", flush=True)
    print_summary(args, cache)
    if args.write_report:
        write_report(args, cache)
    else:
        print(f"--quick: no report written (pass --out to write one); runs cached in {args.cache}")
    return cache


if __name__ == "__main__":
    main()
