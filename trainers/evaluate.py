"""The metrics a run reports, with their protocol recorded beside the numbers."""

from __future__ import annotations

import numpy as np

import tfgen.data
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
