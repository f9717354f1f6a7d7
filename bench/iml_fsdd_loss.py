"""Which reconstruction loss keeps spoken digits recognisable? IML's audio
autoencoder (the ``iml-fsdd`` recipe) trained for the same number of epochs
under the squared error and under the spectrally weighted loss
(``spectral_whitening = gamma``, models/iml.py), each scored on the 300 test
recordings: reconstruction SNR overall and per frequency band, and the
accuracy of the spoken-digit classifier (``fsdd-digits``) on the recordings
passed through the autoencoder. PCA with the same number of components is the
linear reference. A benchmark: never part of the test run.

    TFGEN_DATA_DIR=../shared/data python bench/iml_fsdd_loss.py --gammas 0 0.5 1 --epochs 20

Each autoencoder trains into ``runs/iml-fsdd-loss/gamma-G`` through the
``Trainer`` (checkpoints every epoch: a re-run resumes, a finished run is
reused). Only the autoencoder matters here, so the base distribution is one
full-covariance Gaussian instead of the recipe's 300-state HMM (minutes saved
per run). Writes ``docs/iml_fsdd_loss.md`` and its JSON.

``--init-from MODEL`` (a ``model.keras``, run folder or zoo name) starts every
loss from that model's autoencoder weights instead (a fresh Adam), trains
``--epochs`` more with a plain ``fit`` (no checkpoints) and writes
``docs/iml_fsdd_loss_warm.md``: does the weighted loss move an autoencoder
trained under the squared error? Gamma 0 is the control (the same extra
epochs under the squared error).
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

BANDS = ((0, 1000), (1000, 2000), (2000, 4000))  # Hz, at the 8 kHz sampling rate


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--runs", default="runs/iml-fsdd-loss")
    parser.add_argument("--classifier", default="fsdd-digits")
    parser.add_argument("--init-from", default=None, help="start from this model's autoencoder weights")
    parser.add_argument("--out", default=None, help="default docs/iml_fsdd_loss.md (_warm.md with --init-from)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    stem = "docs/iml_fsdd_loss" + ("_warm" if args.init_from else "")
    args.out, args.json = args.out or stem + ".md", args.json or stem + ".json"
    for g in args.gammas:
        if not 0.0 <= g <= 1.0:
            parser.error(f"each gamma must be in [0, 1], got {g}")
    if args.epochs <= 0:
        parser.error("--epochs must be positive")

    import keras
    import numpy as np
    import tensorflow as tf

    import tfgen
    import tfgen.models  # noqa: F401 (registers the classes)
    from tfgen.data import audio
    from tfgen.metrics import audio as digit_metrics
    from tfgen.trainers import Trainer, recipes
    from iml_fsdd import half_white_pca  # bench/ is on the path when run as a script

    t0 = time.time()
    base = recipes.get("iml-fsdd")
    test_seqs, test_digits = audio.utterance_chunks("test")
    train_chunks = np.concatenate(audio.utterance_chunks("train")[0])
    test_chunks = np.concatenate(test_seqs)
    test_waves = [u.wave for u in audio.load_fsdd("test")]
    ends = np.cumsum([len(s) for s in test_seqs])[:-1]
    classifier = digit_metrics.load_spoken_digit_classifier(args.classifier)
    rate = 8000
    freqs = np.fft.rfftfreq(test_chunks.shape[1], 1 / rate)

    def scores(rec):
        """SNR (dB) overall and per band on the test chunks, and the classifier's accuracy."""
        err_f = np.abs(np.fft.rfft(test_chunks - rec, axis=1)) ** 2
        sig_f = np.abs(np.fft.rfft(test_chunks, axis=1)) ** 2
        bands = {}
        for lo, hi in BANDS:
            sel = (freqs >= lo) & (freqs < hi) if hi < rate / 2 else (freqs >= lo)
            bands[f"{lo}-{hi} Hz"] = float(10 * np.log10(sig_f[:, sel].sum() / err_f[:, sel].sum()))
        waves = [audio.overlap_add(c)[:len(w)] for c, w in zip(np.split(rec, ends), test_waves)]
        acc = digit_metrics.spoken_digit_scores(waves, classifier, labels=test_digits)["accuracy"]
        snr = float(10 * np.log10(np.mean(test_chunks ** 2) / np.mean((test_chunks - rec) ** 2)))
        return {"snr_db": snr, "band_snr_db": bands, "accuracy": float(acc)}

    def reconstruct(model):
        return np.concatenate([model.reconstruct(test_chunks[i:i + 2000]).numpy()
                               for i in range(0, len(test_chunks), 2000)])

    start = start_row = None
    if args.init_from:
        start = tfgen.load(args.init_from, format="keras")  # a zoo name, run folder or .keras file
        if getattr(start, "encoder", None) is None or start.data_shape != (train_chunks.shape[1],):
            parser.error(f"--init-from {args.init_from}: not an IML audio autoencoder like iml-fsdd's")
        start_row = {"gamma": None, "epochs": 0, "train_seconds": 0.0, **scores(reconstruct(start))}
        print(json.dumps(start_row), flush=True)

    def warm_start(recipe, gamma):
        """The recipe's model with ``start``'s autoencoder weights, ``--epochs`` of plain ``fit``."""
        keras.utils.set_random_seed(recipe.seed)
        model = recipes.build_model(recipe, train_chunks.shape[1:])
        model.generator.set_weights(start.generator.get_weights())
        model.encoder.set_weights(start.encoder.get_weights())
        model.adapt(train_chunks)
        data = tf.data.Dataset.from_tensor_slices(train_chunks).shuffle(len(train_chunks), seed=recipe.seed) \
            .batch(recipe.batch_size, drop_remainder=True).repeat()
        print(f"== gamma {gamma:g}: {args.epochs} more epochs from {args.init_from}", flush=True)
        t = time.time()
        model.fit(data, epochs=args.epochs, steps_per_epoch=recipe.steps_per_epoch, verbose=2)
        return model, time.time() - t

    rows = []
    for gamma in args.gammas:
        recipe = base.replace(
            name=f"iml-fsdd-gamma{gamma:g}", steps=args.epochs * base.steps_per_epoch,
            prior="gmm", prior_options={"n_components": 1, "n_init": 1},
            model_options={**base.model_options, "prior_fit_options": {}, "spectral_whitening": gamma})
        if args.init_from:
            model, seconds = warm_start(recipe, gamma)
        else:
            out = pathlib.Path(args.runs) / f"gamma-{gamma:g}"
            print(f"== gamma {gamma:g}: {args.epochs} epochs into {out}", flush=True)
            trainer = Trainer(recipe, out, evaluate_at_end=False, sample_pictures=False, verbose=2)
            model = trainer.run()
            seconds = trainer.train_seconds
        row = {"gamma": gamma, "epochs": args.epochs, "train_seconds": round(seconds, 1),
               **scores(reconstruct(model))}
        print(json.dumps(row), flush=True)
        rows.append(row)

    # Linear references: PCA with the AE's code size and twice it, and PCA of the AE's size on
    # half-whitened spectra (each rfft bin divided by the square root of its RMS over the
    # training chunks, undone after): the least-squares linear code under the gamma = 0.5 loss.
    mean = train_chunks.mean(0)
    _, _, vt = np.linalg.svd(train_chunks - mean, full_matrices=False)
    k = base.latent_dim
    pca = {"components": k, **scores((test_chunks - mean) @ vt[:k].T @ vt[:k] + mean)}
    pca2 = {"components": 2 * k, **scores((test_chunks - mean) @ vt[:2 * k].T @ vt[:2 * k] + mean)}
    del vt
    pca_hw = {"components": k, **scores(half_white_pca(train_chunks, test_chunks, k))}
    real_acc = digit_metrics.spoken_digit_scores(test_waves, classifier, labels=test_digits)["accuracy"]

    command = "python bench/iml_fsdd_loss.py " + " ".join(sys.argv[1:] if argv is None else argv)
    band_names = [f"{lo}-{hi} Hz" for lo, hi in BANDS]
    lines = ["# IML on spoken digits: the reconstruction loss", "",
             "Generated by `bench/iml_fsdd_loss.py` (a benchmark: not part of the test run).", "",
             f"- command: `TFGEN_DATA_DIR=../shared/data {command.strip()}`",
             f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}; {os.cpu_count()} CPU cores, "
             f"Python {platform.python_version()}, TensorFlow {tf.__version__}; wall time "
             f"{(time.time() - t0) / 60:.1f} min (training times were measured beside other jobs)",
             (f"- the autoencoder of `{args.init_from}` (K = {k}), {args.epochs} more epochs of "
              f"{base.steps_per_epoch} steps under each loss (fresh Adam);" if args.init_from else
              f"- the `iml-fsdd` autoencoder (K = {k}), {args.epochs} epochs of {base.steps_per_epoch} steps, "
              "under each loss;") + " scored on the 3028 chunks of the 300 test recordings; accuracy of the "
             f"`{args.classifier}` classifier on the recordings rebuilt from their chunks (real recordings: "
             f"{real_acc:.3f})", "",
             "| loss | SNR (dB) | " + " | ".join(f"SNR {b}" for b in band_names) + " | recognised | train s |",
             "|---|---|" + "---|" * len(band_names) + "---|---|"]
    for r in ([start_row] if args.init_from else []) + rows:
        name = ("the starting model" if r["gamma"] is None else "squared error" if r["gamma"] == 0
                else f"spectral, gamma = {r['gamma']:g}")
        lines.append(f"| {name} | {r['snr_db']:.1f} | " + " | ".join(f"{r['band_snr_db'][b]:.1f}" for b in band_names)
                     + f" | {r['accuracy']:.3f} | {r['train_seconds']:.0f} |")
    for name, ref in ((f"PCA, {k} components", pca), (f"PCA, {2 * k} components", pca2),
                      (f"PCA, {k} components, half-whitened spectra", pca_hw)):
        lines.append(f"| {name} | {ref['snr_db']:.1f} | "
                     + " | ".join(f"{ref['band_snr_db'][b]:.1f}" for b in band_names) + f" | {ref['accuracy']:.3f} | – |")
    lines += ["", "Gamma weights the error's power in each DFT bin by the training chunks' power there to the "
              "power -gamma (0: the squared error; 1: the same relative error in every bin).", ""]
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text("\n".join(lines))
    pathlib.Path(args.json).write_text(json.dumps({"command": command.strip(), "rows": rows, "start": start_row if args.init_from else None,
                                                   "pca": pca, "pca_2k": pca2,
                                                   "pca_half_white": pca_hw,
                                                   "real_accuracy": real_acc}, indent=1))
    print("\n".join(lines))
    print(f"wrote {args.out}, {args.json}")


if __name__ == "__main__":
    main()
