"""The ``tfgen`` command line.

    tfgen recipes                         list the named recipes
    tfgen train RECIPE [--steps N | --epochs E] [--out DIR] [--seed S] [--strategy S] [--precision P]
    tfgen sample MODEL -n N --out FILE.png|FILE.npy [--seed S] [--interpolate ROWS | --traverse ROWS | --grid N]
    tfgen export RUN DIR [--overwrite]
    tfgen evaluate MODEL [--dataset NAME] [--metric parzen [--protocol li2015|goodfellow2014]]
    tfgen evaluate MODEL --metric knn_kl | image (FID/KID/IS on LeNet features) | nn_distance
                         | latent_likelihood (KDE-GAN: held-out codes against KDE bandwidth)
    tfgen evaluate --real --dataset mnist --metric parzen   (the Parzen ceiling: real images)
    tfgen zoo list | tfgen zoo publish RUN NAME
    tfgen demo [--out outputs/demo]

MODEL is a zoo name, a run directory, an export directory or a ``.keras`` file.
"""

from __future__ import annotations

import os

# Before TensorFlow is first imported: its C++ warnings are not for users.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import json
import pathlib
import sys
import time

from tfgen import jsonio


def _load_any(model_arg: str, *, need_keras: bool = False):
    """(model, source) for a zoo name, run dir, export dir or .keras file.

    A missing, foreign, truncated or corrupt file, or one holding a Lambda
    layer, raises ``FileNotFoundError`` or ``tfgen.zoo.ModelFileError`` (a
    ``ValueError``) naming the file, which ``main`` prints as one line (exit 2).
    """
    import tfgen

    try:
        path = pathlib.Path(model_arg)
        if path.suffix == ".keras":
            return tfgen.zoo.load_keras(path), str(path)
        if path.is_dir() and (path / "model.keras").is_file():
            if need_keras:
                return tfgen.zoo.load_keras(path / "model.keras"), str(path)
            return tfgen.load(path), str(path)
        if need_keras:
            return tfgen.load(model_arg, format="keras"), model_arg
        return tfgen.load(model_arg), model_arg
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        # unreadable (permissions, a device, ...): still one clear line
        raise tfgen.zoo.ModelFileError(f"{model_arg!r} could not be read: {e}") from e


def _recipe_of(model_arg: str) -> dict | None:
    """The ``recipe.json`` of a run directory (or of the run holding a file), checked."""
    from tfgen.zoo import ModelFileError

    path = pathlib.Path(model_arg)
    for candidate in (path / "recipe.json", path.parent / "recipe.json"):
        if candidate.is_file():
            try:
                recipe = json.loads(candidate.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ModelFileError(f"{str(candidate)!r} is corrupt: not valid JSON ({e})") from e
            if not isinstance(recipe, dict) or not isinstance(recipe.get("dataset"), str):
                raise ModelFileError(f"{str(candidate)!r} is not a tfgen recipe: it has no 'dataset'")
            return recipe
    return None


def _dataset_of(model_arg: str) -> str | None:
    recipe = _recipe_of(model_arg)
    if recipe is not None:
        return recipe["dataset"]
    try:
        import tfgen

        return tfgen.zoo.card(model_arg)["recipe"]["dataset"]
    except Exception:
        return None


def cmd_recipes(args):
    from tfgen.trainers import recipes

    width = max(len(name) for name in recipes.names())
    for name in recipes.names():
        r = recipes.get(name)
        print(f"{name:{width}s} {r.method:8s} {r.dataset:8s} steps={r.steps:<6d} batch={r.batch_size:<4d} {r.source}")


def cmd_train(args):
    from tfgen.trainers import Trainer, recipes

    recipe = recipes.get(args.recipe)
    steps = args.steps
    if args.epochs is not None:
        if args.epochs <= 0:
            raise ValueError(f"--epochs must be positive, got {args.epochs}")
        steps = args.epochs * recipe.steps_per_epoch
    out = args.out or os.path.join("runs", recipe.name)
    trainer = Trainer(recipe, out, steps=steps, strategy=args.strategy, seed=args.seed,
                      data_dir=args.data_dir, precision=args.precision)
    print(f"training {recipe.name} for {trainer.epochs * trainer.spe} steps "
          f"({trainer.epochs} epochs of {trainer.spe}) into {out}", flush=True)
    trainer.run()
    print(jsonio.dumps(trainer.summary.get("metrics", {}), indent=1))
    print(f"wrote {out}/saved_model, {out}/model.keras, {out}/metrics.json")


def cmd_sample(args):
    import numpy as np

    from tfgen import plotting

    if args.n <= 0:
        raise ValueError(f"-n must be positive, got {args.n}")
    # the output is checked before the model is loaded and sampled (minutes for a big one)
    if not args.out.endswith((".png", ".npy")):
        raise ValueError(f"--out must end in .png or .npy, got {args.out!r}")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise ValueError(f"--out {args.out!r}: its folder {folder!r} does not exist (create it first)")
    if sum(a is not None for a in (args.interpolate, args.traverse, args.grid)) > 1:
        raise ValueError("pass at most one of --interpolate, --traverse and --grid")
    if args.interpolate is not None:
        if not args.out.endswith(".png"):
            raise ValueError(f"--interpolate draws a picture: --out must end in .png, got {args.out!r}")
        model, source = _load_any(args.model, need_keras=True)
        plotting.latent_interpolation(model, args.out, rows=args.interpolate, steps=args.steps,
                                      seed=args.seed, title=f"{source}: latent interpolation")
        print(f"wrote {args.out}")
        return
    if args.grid is not None:
        if not args.out.endswith(".png"):
            raise ValueError(f"--grid draws a picture: --out must end in .png, got {args.out!r}")
        import tfgen.data

        model, source = _load_any(args.model, need_keras=True)
        dataset = _dataset_of(args.model)
        data = centers = None
        if dataset is not None and tfgen.data.info(dataset).get("centers") is not None:
            data = tfgen.data.load_numpy(dataset, "test", n=2000, seed=0)
            centers = tfgen.data.info(dataset)["centers"]
        plotting.latent_grid(model, args.out, n=args.grid, data=data, centers=centers,
                             title=f"{source}: generator on a {args.grid}x{args.grid} latent grid")
        print(f"wrote {args.out}")
        return
    if args.traverse is not None:
        if args.traverse < 1:
            raise ValueError(f"--traverse needs at least 1 row, got {args.traverse}")
        if not args.out.endswith(".png"):
            raise ValueError(f"--traverse draws a picture: --out must end in .png, got {args.out!r}")
        import tfgen.data

        model, source = _load_any(args.model, need_keras=True)
        dataset = _dataset_of(args.model)
        if dataset is None:
            raise ValueError("cannot tell the dataset of this model, whose test images --traverse reverses")
        test = tfgen.data.load_numpy(dataset, "test")
        if len(test) < 2 * args.traverse:
            raise ValueError(f"--traverse {args.traverse} needs {2 * args.traverse} test images")
        picked = test[np.random.default_rng(args.seed).permutation(len(test))[:2 * args.traverse]]
        out = plotting.manifold_traversal(model, picked[0::2], picked[1::2], args.out, steps=args.steps,
                                          reversal_steps=args.reversal_steps, reversal_lr=args.reversal_lr,
                                          seed=args.seed, title=f"{source}: manifold traversal")
        print(f"wrote {args.out} (reversal MSE per pixel {out['reconstruction_mse']:.4f})")
        return
    model, source = _load_any(args.model)
    x = np.asarray(model.sample(args.n, seed=args.seed))
    out = args.out
    if out.endswith(".npy"):
        np.save(out, x)
    elif out.endswith(".png"):
        if x.ndim == 2 and x.shape[1] == 2:
            plotting.scatter(x, out, title=f"{source}: {args.n} samples")
        else:
            plotting.image_grid(x, out, title=f"{source}: {args.n} samples")
    else:
        raise ValueError(f"--out must end in .png or .npy, got {out!r}")
    print(f"wrote {out}")


def cmd_export(args):
    model, _ = _load_any(args.run, need_keras=True)
    model.export(args.dir, overwrite=args.overwrite)
    print(f"wrote {args.dir}")


def _train_split_of(model_arg: str) -> str | None:
    recipe = _recipe_of(model_arg)
    if recipe is not None:
        return recipe.get("train_split", "train")
    try:
        import tfgen

        return tfgen.zoo.card(model_arg)["recipe"].get("train_split", "train")
    except Exception:
        return None


def _keep_evaluation(args, name: str, result: dict):
    """Save an evaluation of a run directory in it, so `tfgen zoo publish` puts it on the card."""
    run_dir = pathlib.Path(args.model or "")
    if not args.real and (run_dir / "recipe.json").is_file():
        (run_dir / "evaluations").mkdir(exist_ok=True)
        out = run_dir / "evaluations" / f"{name}.json"
        out.write_text(jsonio.dumps(result, indent=1))
        print(f"wrote {out}", file=sys.stderr)


def cmd_evaluate(args):
    from tfgen.trainers.evaluate import (evaluate, image_scores, knn_kl, latent_likelihood,
                                         nearest_neighbour, parzen)

    if args.real and args.model:
        raise ValueError("pass a model or --real, not both")
    if not args.real and not args.model:
        raise ValueError("pass a model (zoo name, run dir, export dir or .keras file), or --real")
    dataset = args.dataset or (None if args.real else _dataset_of(args.model))
    if dataset is None:
        raise ValueError("cannot tell the dataset of this model; pass --dataset")
    if args.metric == "knn_kl":
        model = None if args.real else _load_any(args.model)[0]
        result = knn_kl(model, dataset, data_dir=args.data_dir, seed=args.seed)
        print(jsonio.dumps(result, indent=1))
        _keep_evaluation(args, "knn_kl", result)
        return
    if args.metric == "latent_likelihood":
        if args.real:
            raise ValueError("--metric latent_likelihood scores a model's codes; it has no --real form")
        model = _load_any(args.model, need_keras=True)[0]
        result = latent_likelihood(model, dataset, data_dir=args.data_dir, seed=args.seed)
        print(jsonio.dumps(result, indent=1))
        _keep_evaluation(args, args.metric, result)
        return
    if args.metric in ("image", "nn_distance"):
        model = None if args.real else _load_any(args.model)[0]
        if args.metric == "image":
            result = image_scores(model, dataset, data_dir=args.data_dir, seed=args.seed)
        else:
            result = nearest_neighbour(model, dataset, data_dir=args.data_dir, seed=args.seed)
        print(jsonio.dumps(result, indent=1))
        _keep_evaluation(args, args.metric, result)
        return
    if args.metric == "parzen":
        model = None if args.real else _load_any(args.model)[0]
        train_split = None if args.real else _train_split_of(args.model)
        result = parzen(model, dataset, protocol=args.protocol, train_split=train_split,
                                 data_dir=args.data_dir, seed=args.seed, progress=True)
        if result["validation_held_out"] is False:
            print("warning: the validation images were part of this model's training split; "
                  "the bandwidth choice favours memorisation", file=sys.stderr)
        print(jsonio.dumps(result, indent=1))
        _keep_evaluation(args, f"parzen-{args.protocol}", result)
        return
    if args.real:
        raise ValueError("--real is only for --metric parzen, knn_kl, image or nn_distance")
    model, _ = _load_any(args.model)
    print(jsonio.dumps(evaluate(model, dataset, seed=args.seed, data_dir=args.data_dir), indent=1))


def cmd_zoo(args):
    import tfgen

    if args.zoo_command == "publish":
        path = tfgen.zoo.publish(args.run, args.name, command=args.command or "", overwrite=args.overwrite)
        print(f"wrote {path}")
        return
    entries = tfgen.zoo.entries()
    if not entries:
        print(f"no zoo entries in {tfgen.zoo.zoo_dir()}")
    for e in entries:
        m = e.get("metrics") or {}
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()
                 if k in ("modes_covered", "high_quality_rate", "mmd2_vs_test", "mmd2_train_vs_test")}
        print(f"{e['name']:18s} steps={e.get('steps')!s:6s} {jsonio.dumps(shown)}")


def cmd_demo(args):
    from tfgen.demo import run_demo

    run_demo(args.out, quick=args.quick)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tfgen", description="Implicit generative models in TensorFlow/Keras.")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("recipes", help="list the named recipes").set_defaults(func=cmd_recipes)

    t = sub.add_parser("train", help="train a recipe")
    t.add_argument("recipe")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="total optimizer steps (default: the recipe's)")
    g.add_argument("--epochs", type=int, help="in units of the recipe's steps_per_epoch")
    t.add_argument("--out", help="run directory (default runs/RECIPE); re-running resumes")
    t.add_argument("--seed", type=int)
    t.add_argument("--strategy", default="auto", choices=["auto", "default", "mirrored", "multi-worker"])
    t.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16", "mixed_float16"],
                   help="the networks' dtype policy (weights stay float32)")
    t.add_argument("--data-dir", help="offline dataset files (default $TFGEN_DATA_DIR)")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="draw samples from a model into a picture or .npy")
    s.add_argument("model")
    s.add_argument("-n", type=int, default=64)
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--interpolate", type=int, metavar="ROWS",
                   help="instead of samples, ROWS lines between pairs of codes (SGN Fig. 3c)")
    s.add_argument("--traverse", type=int, metavar="ROWS",
                   help="instead of samples, ROWS traversals between the reversed codes of two test "
                        "images (the KDE-GAN paper's manifold traversal)")
    s.add_argument("--grid", type=int, metavar="N",
                   help="instead of samples, the generator on an NxN grid of its 2-D latent space, "
                        "drawn over the data (the Level Set GAN paper's toy figure)")
    s.add_argument("--steps", type=int, default=10, help="images per interpolation/traversal row")
    s.add_argument("--reversal-steps", type=int, default=500,
                   help="--traverse: gradient steps of the reversal of each test image")
    s.add_argument("--reversal-lr", type=float, default=10.0,
                   help="--traverse: the reversal's step size (lower it if the reconstruction "
                        "error printed is high: a DCGAN generator wants ~1)")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("export", help="export a run's model.keras as a SavedModel")
    e.add_argument("run")
    e.add_argument("dir")
    e.add_argument("--overwrite", action="store_true")
    e.set_defaults(func=cmd_export)

    v = sub.add_parser("evaluate", help="evaluate a model on its dataset")
    v.add_argument("model", nargs="?", help="zoo name, run dir, export dir or .keras file")
    v.add_argument("--metric", default="default",
                   choices=["default", "parzen", "knn_kl", "image", "nn_distance", "latent_likelihood"],
                   help="default: the run's own metric (modes, or MMD vs test); parzen: "
                        "Parzen-window log-likelihood of the test split; knn_kl: the WKV k-NN "
                        "estimate of KL(test || model) (SGN's objective); image: FID, KID and "
                        "classifier IS on the zoo's LeNet features; nn_distance: mean L2 pixel "
                        "distance of samples to their nearest training image (memorisation); "
                        "latent_likelihood: held-out code likelihood against KDE bandwidth (KDE-GAN)")
    v.add_argument("--protocol", default="li2015", choices=["li2015", "goodfellow2014"])
    v.add_argument("--real", action="store_true",
                   help="with --metric parzen, knn_kl, image or nn_distance: score real images "
                        "(the reference)")
    v.add_argument("--dataset")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--data-dir")
    v.set_defaults(func=cmd_evaluate)

    z = sub.add_parser("zoo", help="the pretrained zoo")
    zs = z.add_subparsers(dest="zoo_command", required=True)
    zs.add_parser("list", help="list zoo entries")
    zp = zs.add_parser("publish", help="make a finished run a zoo entry")
    zp.add_argument("run")
    zp.add_argument("name")
    zp.add_argument("--command", help="the command that trained and measured it (goes on the card)")
    zp.add_argument("--overwrite", action="store_true")
    z.set_defaults(func=cmd_zoo)

    d = sub.add_parser("demo", help="train on built-in data, write pictures and metrics, export, reload")
    d.add_argument("--out", default="outputs/demo")
    d.add_argument("--quick", action="store_true", help="a much shorter run (smoke test)")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError) as e:
        # the subcommand from its function: `zoo publish --command` overwrites args.command
        print(f"tfgen {args.func.__name__.removeprefix('cmd_')}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
