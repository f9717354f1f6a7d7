"""IML on spoken digits (the paper's §4.2 and Figure 6): generated utterances
from the HMM base of a trained ``iml-fsdd`` model, their spectrograms beside
real ones, WAV files, and the HMM's held-out log-likelihood per chunk against
single-Gaussian bases. A benchmark: never part of the test run.

    TFGEN_DATA_DIR=../shared/data tfgen train iml-fsdd --out runs/iml-fsdd
    TFGEN_DATA_DIR=../shared/data python bench/iml_fsdd.py runs/iml-fsdd

It also fits an HMM on the codes of one digit's recordings only (``--digit``,
the paper's one-digit models) with the same autoencoder, and scores how
recognisable the digits are with the zoo's spoken-digit classifier
(``fsdd-digits``, ``python -m tfgen.metrics.audio``): real test recordings,
the same through the autoencoder, and utterances from both HMMs. Writes
``docs/iml_fsdd.md``, ``docs/iml-fsdd-spectrograms.png`` and a few WAVs under
``docs/audio/``.
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


def half_white_pca(train_chunks, test_chunks, k):
    """Reconstruct ``test_chunks`` through PCA with ``k`` components fitted on half-whitened
    spectra of ``train_chunks`` (each rfft bin divided by the square root of its RMS over
    the training chunks, undone after): the least-squares linear code under a loss that
    weights the weak bands up (the spectral loss at gamma = 0.5)."""
    import numpy as np

    rms = np.sqrt(np.mean(np.abs(np.fft.rfft(train_chunks, axis=1)) ** 2, axis=0)) + 1e-8
    n_bins, length = len(rms), train_chunks.shape[1]

    def to_half_white(c):
        f = np.fft.rfft(c, axis=1) / np.sqrt(rms)
        return np.concatenate([f.real, f.imag], axis=1)

    def from_half_white(z):
        return np.fft.irfft((z[:, :n_bins] + 1j * z[:, n_bins:]) * np.sqrt(rms), n=length, axis=1)

    zt = to_half_white(train_chunks)
    z_mean = zt.mean(0)
    basis = np.linalg.svd(zt - z_mean, full_matrices=False)[2][:k]
    del zt
    return from_half_white((to_half_white(test_chunks) - z_mean) @ basis.T @ basis + z_mean).astype(np.float32)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="an iml-fsdd run directory (with model.keras)")
    parser.add_argument("--chunks", type=int, default=36, help="chunks per generated utterance (36 = 1.85 s)")
    parser.add_argument("--n", type=int, default=4, help="generated utterances per model")
    parser.add_argument("--digit", type=int, default=0, help="the one-digit HMM's digit (-1: none)")
    parser.add_argument("--digit-states", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classifier", default="fsdd-digits", help="spoken-digit classifier: zoo name or path")
    parser.add_argument("--n-score", type=int, default=100, help="generated utterances per HMM that are classified")
    parser.add_argument("--out", default="docs/iml_fsdd.md")
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    import tfgen
    import tfgen.models  # noqa: F401 (registers the classes)
    from tfgen import plotting
    from tfgen.data import audio
    from tfgen.distributions import GaussianMixture, HiddenMarkovModel
    from tfgen.metrics import audio as digit_metrics

    t0 = time.time()
    run = pathlib.Path(args.run)
    model = keras.models.load_model(str(run / "model.keras"))
    info = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    docs = pathlib.Path(args.out).parent
    (docs / "audio").mkdir(parents=True, exist_ok=True)

    train_seqs, train_digits = audio.utterance_chunks("train")
    test_seqs, test_digits = audio.utterance_chunks("test")
    enc = [model.encode_batches(s) for s in train_seqs]
    enc_test = [model.encode_batches(s) for s in test_seqs]
    recon_mse = float(np.mean([np.mean((model.generate(c).numpy() - s) ** 2) for c, s in zip(enc_test, test_seqs)]))
    n_test_chunks = sum(len(c) for c in enc_test)
    # Chunk-weighted reconstruction SNR of the autoencoder against a linear code of the
    # same size (PCA fitted on the training chunks): what a K-d code can hold at least.
    test_chunks, train_chunks = np.concatenate(test_seqs), np.concatenate(train_seqs)
    ae_rec = np.concatenate([model.generate(c).numpy() for c in enc_test])
    mean_chunk = train_chunks.mean(0)
    _, _, vt = np.linalg.svd(train_chunks - mean_chunk, full_matrices=False)
    pca = vt[:model.latent_dim]
    pca_rec = (test_chunks - mean_chunk) @ pca.T @ pca + mean_chunk

    def snr_db(rec):
        return float(10 * np.log10(np.mean(test_chunks ** 2) / np.mean((test_chunks - rec) ** 2)))

    snr = {"autoencoder": snr_db(ae_rec), "pca": snr_db(pca_rec)}

    # Held-out log-likelihood per chunk: the HMM (the model's prior) against
    # single-Gaussian bases fitted on the same training codes.
    def hmm_ll(hmm, seqs):
        # one forward pass per distinct length (a batch of equal-length sequences), not per recording
        by_length = {}
        for c in seqs:
            by_length.setdefault(len(c), []).append(c)
        total = sum(float(tf.reduce_sum(hmm.log_prob(np.stack(group)))) for group in by_length.values())
        return total / sum(len(c) for c in seqs)

    one_state = HiddenMarkovModel(model.latent_dim, n_states=1)
    one_state.fit(enc, max_iter=5, reg=1e-3, seed=args.seed)
    full = GaussianMixture(model.latent_dim, 1, n_init=1, reg_covar=1e-3, seed=args.seed)
    full.fit(np.concatenate(enc), seed=args.seed)
    ll = {"hmm": hmm_ll(model.prior, enc_test), "gaussian_diag": hmm_ll(one_state, enc_test),
          "gaussian_full": float(np.mean(full.log_prob(np.concatenate(enc_test)).numpy())),
          "hmm_train": hmm_ll(model.prior, enc)}
    print(f"held-out log-likelihood per chunk: {ll}", flush=True)

    def utterances(hmm, n, seed, state_means=False):
        codes, states = hmm.sample_sequence(args.chunks, n, seed=seed, return_states=True)
        if state_means:  # the same state paths, decoded without emission noise
            codes = tf.gather(hmm.means, states)
        return [audio.overlap_add(model.generate(c).numpy()) for c in codes.numpy()]

    generated = utterances(model.prior, args.n, args.seed)
    rng = np.random.default_rng(args.seed)
    real_idx = rng.choice(len(test_seqs), args.n, replace=False)
    real = [audio.overlap_add(test_seqs[i]) for i in real_idx]
    means = utterances(model.prior, args.n, args.seed, state_means=True)
    recon = [audio.overlap_add(model.generate(enc_test[i]).numpy()) for i in real_idx]
    waves = generated + means + real + recon
    titles = [f"generated {i + 1} (all digits)" for i in range(args.n)] + \
             [f"state means {i + 1} (same paths)" for i in range(args.n)] + \
             [f"real test: '{test_digits[i]}'" for i in real_idx] + \
             [f"reconstructed: '{test_digits[i]}'" for i in real_idx]
    digit_report = None
    if args.digit >= 0:
        sel = [c for c, d in zip(enc, train_digits) if d == args.digit]
        hmm_d = HiddenMarkovModel(model.latent_dim, n_states=args.digit_states)
        rep = hmm_d.fit(sel, max_iter=100, reg=1e-3, seed=args.seed)
        sel_test = [c for c, d in zip(enc_test, test_digits) if d == args.digit]
        digit_report = {"digit": args.digit, "n_states": args.digit_states, "recordings": len(sel),
                        "heldout_ll_per_chunk": hmm_ll(hmm_d, sel_test),
                        "all_digit_hmm_on_same": hmm_ll(model.prior, sel_test), "n_iter": len(rep["history"]) - 1}
        gen_d = utterances(hmm_d, args.n, args.seed + 1)
        if args.n_score:
            gen_d_scored = utterances(hmm_d, args.n_score, args.seed + 1)
        waves += gen_d
        titles += [f"generated {i + 1} (digit {args.digit} HMM)" for i in range(args.n)]
    wav_paths = []
    for i, w in enumerate(generated[:2] + (gen_d[:2] if digit_report else [])):
        tag = f"all-{i + 1}" if i < 2 else f"digit{args.digit}-{i - 1}"
        p = docs / "audio" / f"iml-fsdd-{tag}.wav"
        audio.write_wav(str(p), w / max(1e-6, float(np.max(np.abs(w)))) * 0.9)
        wav_paths.append(p)
    # Recognisable digits (issue 6): the spoken-digit classifier on real test recordings, on
    # the same recordings through the autoencoder (ae_rec, cut back to each recording's
    # length: overlap_add(frame(x))[:len(x)] is x), and on generated utterances, cropped to
    # their loudest second (fit_length's "energy" anchor: a 1.8 s utterance is mostly silence).
    recognition = None
    if args.n_score:
        classifier = digit_metrics.load_spoken_digit_classifier(args.classifier)
        test_waves = [u.wave for u in audio.load_fsdd("test")]
        ends = np.cumsum([len(c) for c in enc_test])[:-1]
        ae_waves = [audio.overlap_add(c)[:len(w)] for c, w in zip(np.split(ae_rec, ends), test_waves)]
        pca_waves = [audio.overlap_add(c)[:len(w)] for c, w in zip(np.split(pca_rec, ends), test_waves)]
        gen_scored = utterances(model.prior, args.n_score, args.seed)
        recognition = {
            "classifier": args.classifier,
            "real": digit_metrics.spoken_digit_scores(test_waves, classifier, labels=test_digits),
            "autoencoder": digit_metrics.spoken_digit_scores(ae_waves, classifier, labels=test_digits),
            # what a linear code of the autoencoder's size keeps: the reference an AE should beat
            "pca": digit_metrics.spoken_digit_scores(pca_waves, classifier, labels=test_digits),
            # how large a linear code must be for the classifier to recognise its reconstructions
            "pca_sizes": {},
            "generated": digit_metrics.spoken_digit_scores(gen_scored, classifier, anchor="energy"),
        }
        for size in (2 * model.latent_dim, 4 * model.latent_dim):
            rec = (test_chunks - mean_chunk) @ vt[:size].T @ vt[:size] + mean_chunk
            waves_k = [audio.overlap_add(c)[:len(w)] for c, w in zip(np.split(rec, ends), test_waves)]
            recognition["pca_sizes"][size] = {
                "snr_db": snr_db(rec),
                "accuracy": digit_metrics.spoken_digit_scores(waves_k, classifier, labels=test_digits)["accuracy"]}
        # PCA of the same size on half-whitened spectra: does the loss's weighting matter as
        # much as the code's size?
        rec = half_white_pca(train_chunks, test_chunks, model.latent_dim)
        waves_w = [audio.overlap_add(c)[:len(w)] for c, w in zip(np.split(rec, ends), test_waves)]
        recognition["pca_half_white"] = {
            "snr_db": snr_db(rec),
            "accuracy": digit_metrics.spoken_digit_scores(waves_w, classifier, labels=test_digits)["accuracy"]}
        # the same recordings with white noise at the PCA-K code's SNR (per recording): a loss of
        # that size spread evenly over frequency, against the linear code's loss of the weak bands
        noise_rng = np.random.default_rng(args.seed)
        noisy = [w + noise_rng.normal(size=w.shape).astype(np.float32)
                 * np.sqrt(np.mean(w ** 2) / 10 ** (snr["pca"] / 10)) for w in test_waves]
        recognition["white_noise"] = {
            "snr_db": snr["pca"],
            "accuracy": digit_metrics.spoken_digit_scores(noisy, classifier, labels=test_digits)["accuracy"]}
        if digit_report:
            d = digit_metrics.spoken_digit_scores(gen_d_scored, classifier, anchor="energy")
            d["fraction_as_digit"] = d["histogram"][args.digit] / d["n"]
            recognition["digit_hmm"] = d
        print(f"recognisable digits: {json.dumps(recognition)}", flush=True)
    picture = docs / "iml-fsdd-spectrograms.png"
    plotting.spectrograms(waves, titles, path=str(picture), ncols=args.n,
                          suptitle="IML on FSDD: generated (HMM base, overlap-add) vs real test utterances")

    lines = ["# IML on spoken digits (FSDD)", "",
             "Generated by `bench/iml_fsdd.py` (a benchmark: not part of the test run).", "",
             f"- command: `python bench/iml_fsdd.py {args.run}`; model trained by `tfgen train iml-fsdd` "
             f"({info.get('steps', '?')} steps, {info.get('train_seconds', '?')} s; HMM fit "
             f"{info.get('prior_fit', {}).get('seconds', '?')} s)",
             f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}; {os.cpu_count()} CPU cores, "
             f"Python {platform.python_version()}, TensorFlow {tf.__version__}; wall time "
             f"{(time.time() - t0) / 60:.1f} min",
             f"- autoencoder: 800-sample Hann chunks, 50% overlap, K = {model.latent_dim}; test-chunk reconstruction "
             f"MSE {recon_mse:.2e} (the chunks' mean square is "
             f"{float(np.mean([np.mean(s ** 2) for s in test_seqs])):.2e}; means over recordings)",
             f"- reconstruction SNR over all test chunks: autoencoder {snr['autoencoder']:.1f} dB; PCA with the "
             f"same {model.latent_dim} components (fitted on the training chunks) {snr['pca']:.1f} dB: "
             + ("the autoencoder is below a linear code of its size (undertrained)" if snr["autoencoder"] < snr["pca"]
                else "the autoencoder beats a linear code of its size"), "",
             f"## Held-out log-likelihood per chunk ({n_test_chunks} test chunks of {len(test_seqs)} recordings)", "",
             "The base distribution over the test recordings' codes (nats per chunk; higher is better):", "",
             "| base distribution | log-likelihood / chunk |", "|---|---|",
             f"| HMM, {model.prior.n_states} states (the model's) | {ll['hmm']:.1f} |",
             f"| one Gaussian, diagonal (a 1-state HMM) | {ll['gaussian_diag']:.1f} |",
             f"| one Gaussian, full covariance | {ll['gaussian_full']:.1f} |",
             f"| (the HMM on its training codes) | {ll['hmm_train']:.1f} |"]
    if digit_report:
        lines += ["", f"One-digit model: an HMM with {args.digit_states} states fitted on the codes of the "
                      f"{digit_report['recordings']} training recordings of '{args.digit}' (same autoencoder): "
                      f"{digit_report['heldout_ll_per_chunk']:.1f} nats per chunk on that digit's test "
                      f"recordings (the all-digit HMM: {digit_report['all_digit_hmm_on_same']:.1f})."]
    if recognition:
        card = {}
        try:
            card = json.loads((tfgen.zoo.zoo_dir() / args.classifier / "card.json").read_text())
        except (OSError, ValueError):
            pass
        r, a, g = recognition["real"], recognition["autoencoder"], recognition["generated"]
        pc = recognition["pca"]

        def hist(s):
            return " ".join(str(c) for c in s["histogram"])

        lines += ["", "## Recognisable digits", "",
                  f"The spoken-digit classifier `{args.classifier}` (`python -m tfgen.metrics.audio`; log-magnitude "
                  f"STFT and a small CNN on 1 s of audio; FSDD test accuracy "
                  f"{card.get('test_accuracy', float('nan')):.3f} on its card) on the {r['n']} real test recordings, "
                  "on the same recordings passed through the autoencoder (encode the chunks, decode, overlap-add) "
                  "and through PCA with as many components (a linear code of the same size, fitted on the "
                  "training chunks), "
                  f"and on {g['n']} utterances of {args.chunks} chunks generated by each HMM. Recordings are "
                  "zero-padded or cropped to 1 s around their centre, generated utterances cropped to their "
                  "loudest second. IS: exp(E KL(p(y|x) || p(y))) over all utterances of a row, one split "
                  "(1 to 10; 10 = confident and evenly spread over the digits).", "",
                  "| utterances | n | accuracy | mean max-probability | IS | predicted digits 0-9 |",
                  "|---|---|---|---|---|---|",
                  f"| real test recordings | {r['n']} | {r['accuracy']:.3f} | {r['mean_max_probability']:.3f} | "
                  f"{r['inception_score']:.2f} | {hist(r)} |",
                  f"| through the autoencoder | {a['n']} | {a['accuracy']:.3f} | {a['mean_max_probability']:.3f} | "
                  f"{a['inception_score']:.2f} | {hist(a)} |",
                  f"| through PCA, {model.latent_dim} components | {pc['n']} | {pc['accuracy']:.3f} | "
                  f"{pc['mean_max_probability']:.3f} | {pc['inception_score']:.2f} | {hist(pc)} |",
                  f"| generated, all-digit HMM | {g['n']} | - | {g['mean_max_probability']:.3f} | "
                  f"{g['inception_score']:.2f} | {hist(g)} |"]
        if "digit_hmm" in recognition:
            d = recognition["digit_hmm"]
            lines += [f"| generated, digit-{args.digit} HMM | {d['n']} | {d['fraction_as_digit']:.3f} "
                      f"(as '{args.digit}') | {d['mean_max_probability']:.3f} | {d['inception_score']:.2f} | "
                      f"{hist(d)} |"]
        sizes = recognition["pca_sizes"]
        lines += ["", "How large a linear code must be before the classifier recognises its reconstructions: "
                  + "; ".join(f"PCA with {k} components, SNR {v['snr_db']:.1f} dB, accuracy {v['accuracy']:.3f}"
                              for k, v in [(model.latent_dim, {"snr_db": snr["pca"], "accuracy": pc["accuracy"]}),
                                           *sizes.items()]) + ". "
                  f"White noise added to the recordings at the {model.latent_dim}-component code's SNR "
                  f"({recognition['white_noise']['snr_db']:.1f} dB) leaves accuracy "
                  f"{recognition['white_noise']['accuracy']:.3f}"
                  + " (the classifier was trained with white noise at 0-30 dB added to half of its "
                    "recordings: it tolerates white noise by training, so this row says what an evenly "
                    "spread error costs this classifier, not a listener)."
                  + f" PCA with {model.latent_dim} components on half-whitened spectra (each frequency bin "
                  f"divided by the square root of its RMS, undone after decoding): SNR "
                  f"{recognition['pca_half_white']['snr_db']:.1f} dB, accuracy "
                  f"{recognition['pca_half_white']['accuracy']:.3f}."]
    lines += ["", "## Spectrograms (the paper's Figure 6)", "",
              f"Rows: {args.n} utterances of {args.chunks} chunks generated by the all-digit HMM; the same "
              "state paths decoded from the state means (no emission noise); real test recordings; the "
              "same recordings passed through the autoencoder"
              + (f"; {args.n} from the digit-{args.digit} HMM" if digit_report else "") + ".", "",
              f"![spectrograms]({picture.name})", "",
              "WAVs (peak-normalised): " + ", ".join(f"[{p.name}](audio/{p.name})" for p in wav_paths), ""]
    pathlib.Path(args.out).write_text("\n".join(lines) + "\n")
    pathlib.Path(args.out).with_suffix(".json").write_text(json.dumps(
        {"log_likelihood_per_chunk": ll, "digit": digit_report, "reconstruction_mse": recon_mse,
         "reconstruction_snr_db": snr, "recognisable_digits": recognition}, indent=1))
    print(f"wrote {args.out}, {picture}")


if __name__ == "__main__":
    sys.exit(main())
