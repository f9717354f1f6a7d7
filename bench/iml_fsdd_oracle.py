"""Spoken digits: is the code or the HMM base what keeps IML's generated digits
unrecognisable? A benchmark: never part of the test run.

``bench/iml_fsdd.py`` found the ``iml-fsdd`` model's generated utterances
unrecognisable, and its autoencoder already losing much of what the classifier
needs (55% of test recordings recognised after encoding and decoding). This
script takes the autoencoder out: the code of a chunk is its PCA projection
onto ``k`` components fitted on the training chunks (whitened, so the HMM's
variance floor means the same in every component), decoded exactly by the
transpose. On those codes it fits the paper's one-digit models (§4.2: an HMM
per digit, trained on that digit's recordings only), samples utterances of 36
chunks, decodes them by overlap-add as ``iml-fsdd`` does, and asks the zoo's
spoken-digit classifier which digit it hears. If PCA codes that reconstruct
recognisably (k = 320: 96% of test recordings) also give recognisable samples,
the limit is the code; if not, it is the HMM base with independently decoded,
overlap-added chunks.

    TFGEN_DATA_DIR=../shared/data python bench/iml_fsdd_oracle.py --ks 80 320

``--autoencoder iml-fsdd`` adds a row with the zoo autoencoder's codes under
the same protocol. Writes ``docs/iml_fsdd_oracle.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import shlex
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[80, 320], help="PCA code sizes")
    parser.add_argument("--autoencoder", default=None, help="also a row with this IML model's codes (zoo name or run)")
    parser.add_argument("--states", type=int, default=40, help="HMM states per digit")
    parser.add_argument("--chunks", type=int, default=36, help="chunks per generated utterance (36 = 1.85 s)")
    parser.add_argument("--n", type=int, default=30, help="generated utterances per digit")
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classifier", default="fsdd-digits")
    parser.add_argument("--picture-digits", type=int, nargs="*", default=[2, 4, 7, 9],
                        help="the spectrogram picture's columns")
    parser.add_argument("--out", default="docs/iml_fsdd_oracle.md")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    import tfgen
    import tfgen.models  # noqa: F401 (registers the classes)
    from tfgen import plotting
    from tfgen.data import audio
    from tfgen.distributions import HiddenMarkovModel
    from tfgen.metrics import audio as digit_metrics

    t0 = time.time()
    train_seqs, train_digits = audio.utterance_chunks("train")
    test_seqs, test_digits = audio.utterance_chunks("test")
    train_chunks, test_chunks = np.concatenate(train_seqs), np.concatenate(test_seqs)
    mean_chunk = train_chunks.mean(0)
    _, sing, vt = np.linalg.svd(train_chunks - mean_chunk, full_matrices=False)
    component_std = sing / np.sqrt(len(train_chunks) - 1)
    classifier = digit_metrics.load_spoken_digit_classifier(args.classifier)
    test_waves = [u.wave for u in audio.load_fsdd("test")]
    ends = np.cumsum([len(s) for s in test_seqs])[:-1]
    digits = sorted(set(int(d) for d in train_digits))

    def pca_code(k):
        basis, std = vt[:k], component_std[:k]
        return ((lambda c: ((c - mean_chunk) @ basis.T / std).astype(np.float32)),
                (lambda z: (z * std) @ basis + mean_chunk))

    codes = {f"PCA, {k} components": pca_code(k) for k in args.ks}
    if args.autoencoder:
        model = tfgen.load(args.autoencoder, format="keras")
        # whitened as the PCA codes are, so the variance floor means the same
        train_codes = model.encode_batches(train_chunks)
        c_mean, c_std = train_codes.mean(0), train_codes.std(0) + 1e-8
        codes[f"autoencoder `{args.autoencoder}` (K = {model.latent_dim})"] = (
            lambda c: ((model.encode_batches(c) - c_mean) / c_std).astype(np.float32),
            lambda z: model.generate((z * c_std + c_mean).astype(np.float32)).numpy())

    rows = []
    # the picture: per digit column, a real test recording, then each code's first sampled
    # utterance and its state-means decoding
    pic_waves = {d: [test_waves[list(test_digits).index(d)]] for d in args.picture_digits}
    pic_titles = {d: [f"real test '{d}'"] for d in args.picture_digits}
    for name, (encode, decode) in codes.items():
        t_row = time.time()
        rec = decode(encode(test_chunks))
        snr = float(10 * np.log10(np.mean(test_chunks ** 2) / np.mean((test_chunks - rec) ** 2)))
        rec_waves = [audio.overlap_add(c)[:len(w)] for c, w in zip(np.split(rec, ends), test_waves)]
        rec_acc = digit_metrics.spoken_digit_scores(rec_waves, classifier, labels=test_digits)["accuracy"]
        sampled, from_means, per_digit, fit_s = [], [], {}, 0.0
        for d in digits:
            seqs = [encode(s) for s, dd in zip(train_seqs, train_digits) if dd == d]
            hmm = HiddenMarkovModel(seqs[0].shape[1], n_states=args.states)
            t_fit = time.time()
            hmm.fit(seqs, max_iter=args.max_iter, reg=1e-3, seed=args.seed)
            fit_s += time.time() - t_fit
            z, states = hmm.sample_sequence(args.chunks, args.n, seed=args.seed + d, return_states=True)
            waves = [audio.overlap_add(decode(c)) for c in z.numpy()]
            mean_waves = [audio.overlap_add(decode(c)) for c in tf.gather(hmm.means, states).numpy()]
            s = digit_metrics.spoken_digit_scores(waves, classifier, labels=[d] * args.n, anchor="energy")
            m = digit_metrics.spoken_digit_scores(mean_waves, classifier, labels=[d] * args.n, anchor="energy")
            per_digit[d] = {"sampled": s["accuracy"], "state_means": m["accuracy"]}
            if d in pic_waves:
                short = name.split(" (")[0].replace("components", "comp.").replace("`", "")
                pic_waves[d] += [waves[0], mean_waves[0]]
                pic_titles[d] += [f"'{d}' HMM, {short}: sampled", f"'{d}' HMM, {short}: state means"]
            sampled.append(s["accuracy"])
            from_means.append(m["accuracy"])
            print(f"{name}: digit {d}: recognised {s['accuracy']:.2f} sampled, {m['accuracy']:.2f} from state "
                  f"means ({time.time() - t_row:.0f} s)", flush=True)
        rows.append({"code": name, "snr_db": snr, "reconstruction_accuracy": rec_acc,
                     "sampled_accuracy": float(np.mean(sampled)), "state_means_accuracy": float(np.mean(from_means)),
                     "per_digit": per_digit, "fit_seconds": round(fit_s, 1)})

    lines = ["# Spoken digits: the code or the HMM base?", "",
             "Generated by `bench/iml_fsdd_oracle.py` (a benchmark: not part of the test run).", "",
             "- command: `TFGEN_DATA_DIR=../shared/data python bench/iml_fsdd_oracle.py "
             + shlex.join(sys.argv[1:] if argv is None else argv) + "`",
             f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}; {os.cpu_count()} CPU cores, "
             f"Python {platform.python_version()}, TensorFlow {tf.__version__}; wall time "
             f"{(time.time() - t0) / 60:.1f} min (beside other jobs)",
             f"- per code and digit: an HMM with {args.states} diagonal-Gaussian states fitted by Baum-Welch "
             f"(at most {args.max_iter} iterations, variance floor 1e-3 of the whitened codes) on the codes of "
             f"that digit's training recordings; {args.n} utterances of {args.chunks} chunks sampled, decoded "
             "chunk by chunk and overlap-added; the classifier `" + args.classifier + "` on their loudest second",
             "- recognised: the fraction classified as the digit whose HMM made them (chance 0.10); "
             "'state means': the same state paths decoded from the state means (no emission noise)", "",
             "| code | SNR (dB) | test recordings recognised after coding | sampled utterances recognised "
             "| from state means | HMM fits (s) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['code']} | {r['snr_db']:.1f} | {r['reconstruction_accuracy']:.3f} | "
                     f"{r['sampled_accuracy']:.3f} | {r['state_means_accuracy']:.3f} | {r['fit_seconds']:.0f} |")
    lines += ["", "Per digit (sampled / state means):", "",
              "| code | " + " | ".join(str(d) for d in digits) + " |", "|---|" + "---|" * len(digits)]
    for r in rows:
        lines.append(f"| {r['code']} | " + " | ".join(
            f"{r['per_digit'][d]['sampled']:.2f} / {r['per_digit'][d]['state_means']:.2f}" for d in digits) + " |")
    out = pathlib.Path(args.out)
    if args.picture_digits:
        # row-major grid: row j holds the j-th panel of every digit's column
        picture = out.with_suffix(".png")
        n_rows = len(pic_waves[args.picture_digits[0]])
        plotting.spectrograms([pic_waves[d][j] for j in range(n_rows) for d in args.picture_digits],
                              [pic_titles[d][j] for j in range(n_rows) for d in args.picture_digits],
                              path=str(picture), ncols=len(args.picture_digits),
                              suptitle="One HMM per digit on PCA codes and on the IML autoencoder's codes")
        lines += ["", "Spectrograms: per column a digit; first row a real test recording, then per code its "
                      "digit HMM's first sampled utterance and the same state path decoded from the state means.",
                  "", f"![spectrograms]({picture.name})"]
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
