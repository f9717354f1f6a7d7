"""The metrics a run reports, with their protocol recorded beside the numbers."""

from __future__ import annotations

import numpy as np

import tfgen.data
import tfgen.ops
from tfgen import metrics


def evaluate(model, dataset: str, *, dataset_options: dict | None = None, seed: int = 0,
             data_dir=None, n_samples: int | None = None) -> dict:
    """Judge a trained model on its dataset.

    Toy mixtures (``ring8``, ``grid25``, ...): mode coverage and high-quality
    rate on 2500 samples (VEEGAN's protocol; ``tfgen.metrics.toy_mode_stats``).
    Images: the MMD two-sample statistic (unbiased MMD^2, Gaussian kernel,
    bandwidth from the median heuristic of the data alone, 2000 samples per
    side, 200 permutations) between samples and the test split, and the same
    statistic between the train and test splits as the floor a perfect
    model would reach.
    """
    dataset_options = dict(dataset_options or {})
    info = tfgen.data.info(dataset, **dataset_options)
    if info["kind"] == "toy":
        n = n_samples or 2500
        samples = np.asarray(model.sample(n, seed=seed))
        stats = metrics.toy_mode_stats(samples, dataset, **dataset_options)
        return {"protocol": f"toy_mode_stats: {n} samples, high quality within 3 std, a mode counts "
                            f"with >= {stats['min_count']} high-quality samples",
                "modes_covered": int(stats["modes_covered"]), "n_modes": int(stats["n_modes"]),
                "high_quality_rate": float(stats["high_quality_rate"]),
                "kl_to_uniform_modes": float(stats["kl_to_uniform_modes"]),
                "diverged": bool(stats["diverged"])}
    n = n_samples or 2000
    test = tfgen.data.load_numpy(dataset, "test", data_dir=data_dir, **dataset_options)
    train = tfgen.data.load_numpy(dataset, "train", data_dir=data_dir, **dataset_options)
    rng = np.random.default_rng(seed)
    test = test[rng.permutation(len(test))[:n]]
    train = train[rng.permutation(len(train))[:n]]
    samples = np.asarray(model.sample(n, seed=seed))
    kw = dict(n_permutations=200, max_samples=n, seed=seed, estimator="unbiased")
    # The bandwidth comes from the data alone (train + test), so every model
    # is measured with the same kernel and the numbers compare across models.
    vs_train = metrics.mmd_two_sample_test(train, test, **kw)
    vs_model = metrics.mmd_two_sample_test(samples, test, bandwidths=vs_train["bandwidths"], **kw)
    return {"protocol": f"MMD two-sample test vs the test split: unbiased MMD^2, Gaussian kernel whose "
                        f"bandwidth is the median heuristic of {n} train + {n} test images (the same for "
                        f"every model), {n} samples vs {n} test images, 200 permutations",
            "mmd2_vs_test": float(vs_model["mmd2"]), "p_value": float(vs_model["p_value"]),
            "bandwidth": [float(b) for b in np.ravel(vs_model["bandwidths"])],
            "mmd2_train_vs_test": float(vs_train["mmd2"])}


# Where each Parzen protocol takes its validation images from. li2015 holds 5,000
# training images out of training (Li et al. draw them by a seed-0 permutation;
# our MNIST recipes hold out the last 5,000, train[55000:], which is as good a
# held-out set and needs no permutation to reproduce); goodfellow2014 uses
# train[50000:60000] (of which its code reads the first 1,000).
PARZEN_VALIDATION = {"li2015": "train[55000:]", "goodfellow2014": "train[50000:60000]"}


def _split_range(split: str, total: int) -> range:
    from tfgen.data import images

    base, sl = images.parse_split(split, ("train", "test"))
    return range(total)[sl] if sl is not None else range(total)


def parzen(model, dataset: str = "mnist", *, protocol: str = "li2015", train_split: str | None = None,
           data_dir=None, seed: int = 0, progress: bool = False) -> dict:
    """The Parzen-window log-likelihood of the test split under a published protocol.

    ``model=None`` measures real training images instead of samples (the first
    ``n_samples`` of the training part that is not validation): the ceiling a
    model's number should be read against. ``train_split`` is the split the
    model was trained on, to record whether the validation images were held
    out of training (``validation_held_out``); li2015 requires it.
    """
    from tfgen.metrics import parzen as pz

    if protocol not in PARZEN_VALIDATION:
        raise ValueError(f"unknown Parzen protocol {protocol!r}; expected one of {sorted(PARZEN_VALIDATION)}")
    info = tfgen.data.info(dataset)
    if info["kind"] != "image":
        raise ValueError(f"the Parzen protocols are defined for image data, not {dataset!r}")
    proto = pz.PROTOCOLS[protocol]
    val_split = PARZEN_VALIDATION[protocol]
    n_train = info["splits"]["train"]
    validation = tfgen.data.load_numpy(dataset, val_split, data_dir=data_dir)
    test = tfgen.data.load_numpy(dataset, "test", data_dir=data_dir)
    held_out = None
    if train_split is not None:
        held_out = not set(_split_range(train_split, n_train)) & set(_split_range(val_split, n_train))
    if model is None:
        # the ceiling: real images from the part of train that is not validation
        first_val = _split_range(val_split, n_train).start
        real = tfgen.data.load_numpy(dataset, f"train[:{first_val}]", data_dir=data_dir)
        if len(real) < proto.n_samples:
            raise ValueError(f"{dataset} has {len(real)} training images outside the validation "
                             f"set; {protocol} needs {proto.n_samples}")
        source = np.asarray(real[:proto.n_samples])
        held_out = True
    else:
        source = lambda n, s: np.asarray(model.sample(n, seed=s))  # noqa: E731
    result = pz.parzen_protocol(source, validation, test, protocol=protocol, seed=seed, progress=progress)
    result.update(dataset=dataset, validation_split=val_split, validation_held_out=held_out,
                  samples="real training images" if model is None else "model samples",
                  description=proto.description)
    return result


def knn_kl(model, dataset: str = "mnist", *, n: int = 10_000, k: int = 1, mode: str = "fixed",
           data_dir=None, seed: int = 0) -> dict:
    """SGN's own objective on held-out data: the WKV k-NN estimate of
    ``KL(test || model)`` from ``n`` test images and ``n`` samples
    (``tfgen.metrics.knn_kl``), beside the same estimate with ``n`` real training
    images in place of the samples: the value a model equal to the data would get
    at this sample size (the estimator is biased at finite n, SGN §3).
    ``model=None`` returns only that reference."""
    info = tfgen.data.info(dataset)
    test = tfgen.data.load_numpy(dataset, "test", data_dir=data_dir)
    n = min(int(n), len(test))
    test = test[:n]
    real = tfgen.data.load_numpy(dataset, f"train[:{n}]", data_dir=data_dir) \
        if info["kind"] == "image" else tfgen.data.load_numpy(dataset, "train", n=n, seed=seed + 1)
    ref = metrics.knn_kl(test, real, k=k, mode=mode, return_details=True)
    result = {"protocol": f"WKV k-NN KL(test || Q), {mode} k={k}, {n} test points vs {n} points of Q",
              "real_train_images": {"kl": ref["kl"], "mean_log_ratio": ref["mean_log_ratio"]}}
    if model is not None:
        samples = np.asarray(model.sample(n, seed=seed))
        got = metrics.knn_kl(test, samples, k=k, mode=mode, return_details=True)
        result.update(kl=got["kl"], mean_log_ratio=got["mean_log_ratio"])
    return result


def image_scores(model, dataset: str = "mnist", *, n: int = 10_000, feature_network: str = "lenet-mnist",
                 kid_subsets: int = 100, kid_subset_size: int = 1000, data_dir=None, seed: int = 0) -> dict:
    """FID, KID and the classifier Inception Score of ``n`` samples against ``n``
    test images, on the features of a classifier (METHODS.md 6(c): the offline
    LeNet ``lenet-mnist`` from the zoo by default), beside the same scores for
    ``n`` real training images: the floor a model equal to the data would get at
    this sample size. ``model=None`` returns only that reference."""
    net = metrics.FeatureNetwork.load(feature_network)
    test = tfgen.data.load_numpy(dataset, "test", data_dir=data_dir)
    n = min(int(n), len(test))
    test_f = net.features(test[:n])
    mu_t, s_t = metrics.feature_statistics(test_f)

    def scores(images):
        feats, probs = net.outputs(images)
        mu, s = metrics.feature_statistics(feats)
        kid_mean, kid_std = metrics.kid(test_f, feats, subsets=kid_subsets,
                                        subset_size=min(kid_subset_size, n), seed=seed)
        out = {"fid": metrics.frechet_distance(mu_t, s_t, mu, s), "kid": kid_mean, "kid_std": kid_std}
        if probs is not None:
            is_mean, is_std = metrics.inception_score(probs, splits=10)
            out.update(inception_score=is_mean, inception_score_std=is_std)
        return out

    real = tfgen.data.load_numpy(dataset, f"train[:{n}]", data_dir=data_dir)
    result = {"protocol": f"{n} samples vs {n} test images on {feature_network} features; "
                          f"KID: cubic kernel, {kid_subsets} subsets of {min(kid_subset_size, n)}; "
                          "IS: 10 splits",
              "feature_network": feature_network, "real_train_images": scores(real)}
    if model is not None:
        result.update(scores(np.asarray(model.sample(n, seed=seed))))
    return result


def nearest_neighbour(model, dataset: str = "mnist", *, n: int = 10_000, backend: str = "exact",
                      data_dir=None, seed: int = 0) -> dict:
    """The KDE-GAN paper's memorisation check (App. Tab. 1): the mean L2 pixel
    distance of ``n`` samples to their nearest training image; beside it the same
    for ``n`` test images (what unseen real data scores). ``model=None`` returns
    only that reference.

    Exact search by default: a missed neighbour can only overstate a distance,
    which would hide memorisation, and 10,000 x 60,000 distances take seconds.
    ``backend="scann"`` reports its recall against exact search."""
    train = tfgen.data.load_numpy(dataset, "train", data_dir=data_dir)
    test = tfgen.data.load_numpy(dataset, "test", data_dir=data_dir)
    index = tfgen.ops.make_index(backend, **({"num_leaves": 200, "num_leaves_to_search": 20}
                                            if backend == "scann" else {}))
    index.fit(train.reshape(len(train), -1))
    n = min(int(n), len(test))

    def score(x):
        r = metrics.nearest_neighbour_distance(x, index=index, backend=backend, seed=seed)
        return {"mean": r["mean"], "std": r["std"], "recall": r["recall"]}

    result = {"protocol": f"L2 pixel distance ([0, 1] pixels) of {n} points to the nearest of "
                          f"{len(train)} training images, {backend} search",
              "test_images": score(test[:n])}
    if model is not None:
        result.update(score(np.asarray(model.sample(n, seed=seed))))
    return result


LATENT_BANDWIDTHS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def latent_likelihood(model, dataset: str = "mnist", *, n: int = 1000, bandwidths=LATENT_BANDWIDTHS,
                      batch_size: int = 500, n_train: int = 2000, reversal_steps: int = 20,
                      data_dir=None, seed: int = 0) -> dict:
    """The KDE-GAN paper's Figure 10: ``n`` test images are reversed, and the
    mean log-likelihood of their codes under a KDE over codes of training
    images is reported for each bandwidth
    (``tfgen.distributions.heldout_log_likelihood``).

    A KDE-GAN (a fitted KDE prior and a ``reverse`` method) uses its own
    reversal and the training codes its prior holds. Any other model with a
    generator (the GAN baseline of Fig. 10) gets the KDE-GAN recipes' reversal
    (``tfgen.ops.reverse``: lr 1, tau = gamma = 1e-4, at most
    ``reversal_steps``) of the first ``n_train`` training images and of the
    test images, each batch against a batch generated from the model's prior.
    """
    from tfgen.distributions import KDE, heldout_log_likelihood
    import tensorflow as tf

    if not hasattr(model, "generator") or not hasattr(model, "prior"):
        raise ValueError("latent likelihood needs a Keras model with a generator and a prior "
                         "(load it in Keras format)")
    for name, value in (("n", n), ("batch_size", batch_size), ("n_train", n_train)):
        if int(value) < 2:
            raise ValueError(f"{name} must be >= 2, got {value}")
    if not list(bandwidths) or min(bandwidths) <= 0:
        raise ValueError(f"bandwidths must be positive, got {list(bandwidths)}")
    own = isinstance(model.prior, KDE) and hasattr(model, "reverse")
    if own and int(model.prior.count) == 0:
        raise ValueError("the model's KDE prior is not fitted")

    def reverse(images, salt):
        codes, steps = [], []
        for i, start in enumerate(range(0, len(images), batch_size)):
            batch = tf.constant(images[start:start + batch_size])
            ref = model.generator(model.prior.sample(len(batch), seed=[seed, salt + 2 * i]), training=False)
            rseed = tf.constant([seed, salt + 2 * i + 1], tf.int32)
            if own:
                rev = model.reverse(batch, seed=rseed, reference=ref)
            else:
                rev = tfgen.ops.reverse(model.generator, batch, steps=reversal_steps, lr=1.0, reference=ref,
                                        threshold=1e-4, gamma=1e-4, init_scale=1e-4, seed=rseed)
            codes.append(rev.codes.numpy())
            steps.append(int(rev.steps))
        return np.concatenate(codes), float(np.mean(steps))

    test = tfgen.data.load_numpy(dataset, "test", data_dir=data_dir)[:int(n)]
    held_out, test_steps = reverse(test, 0)
    if own:
        train_codes = model.prior.codes.numpy()[:int(model.prior.count)]
        source = f"the prior's {len(train_codes)} training codes"
    else:
        train = tfgen.data.load_numpy(dataset, "train", data_dir=data_dir)[:int(n_train)]
        train_codes, train_steps = reverse(train, 1_000_000)
        source = f"the codes of {len(train_codes)} training images ({train_steps:.1f} steps per batch)"
    curve = heldout_log_likelihood(train_codes, held_out, list(bandwidths))
    result = {"protocol": f"{len(test)} test images reversed ({test_steps:.1f} steps per batch of "
                          f"{batch_size}); mean log-likelihood of their codes under a KDE over "
                          f"{source}, per bandwidth",
              "curve": curve, "best_bandwidth": max(curve, key=lambda c: c["mean"])["bandwidth"]}
    if own:
        result["model_bandwidth"] = float(model.prior.bandwidth.numpy())
    return result
