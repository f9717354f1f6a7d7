"""``tfgen.trainers.evaluate.parzen``: the protocol's wiring (validation split,
held-out check, real-image ceiling), on the 8x8 digits with a tiny protocol."""

import importlib

import numpy as np
import pytest

import tfgen
from tfgen import cli
from tfgen.metrics import parzen as pz
# the module, not the function of the same name that tfgen.trainers exports
evaluate = importlib.import_module("tfgen.trainers.evaluate")


class FixedSamples:
    """A stand-in model whose samples are given images."""

    def __init__(self, images):
        self.images = images

    def sample(self, n, seed=0):
        return self.images[:n]


@pytest.fixture
def tiny_protocol(monkeypatch):
    proto = pz.Protocol(n_samples=300, sigmas=(0.2, 0.4, 0.8), n_validation=100, name="li2015")
    monkeypatch.setitem(pz.PROTOCOLS, "li2015", proto)
    monkeypatch.setitem(evaluate.PARZEN_VALIDATION, "li2015", "train[1400:]")
    return proto


def test_parzen_uses_the_protocol_splits(tiny_protocol):
    train = tfgen.data.load_numpy("digits", "train")
    test = tfgen.data.load_numpy("digits", "test")
    model = FixedSamples(train[:300])
    result = evaluate.parzen(model, "digits", train_split="train[:1400]")
    # the same numbers by hand: sigma chosen on train[1400:1500], test LL at it
    val = train[1400:1500]
    _, curve = pz.select_bandwidth(train[:300], val, tiny_protocol.sigmas)
    best = max(curve, key=curve.get)
    expected = pz.parzen_log_likelihood(train[:300], test, best)
    assert result["sigma"] == best
    np.testing.assert_allclose(result["mean"], expected["mean"], rtol=1e-9)
    assert result["validation_held_out"] is True and result["validation_split"] == "train[1400:]"
    assert evaluate.parzen(model, "digits", train_split="train")["validation_held_out"] is False


def test_real_images_ceiling(tiny_protocol):
    train = tfgen.data.load_numpy("digits", "train")
    real = evaluate.parzen(None, "digits")
    direct = evaluate.parzen(FixedSamples(train[:300]), "digits")
    assert real["samples"] == "real training images"
    np.testing.assert_allclose(real["mean"], direct["mean"], rtol=1e-12)


def test_parzen_errors(tiny_protocol):
    with pytest.raises(ValueError, match="unknown Parzen protocol"):
        evaluate.parzen(None, "digits", protocol="theis2016")
    with pytest.raises(ValueError, match="image data"):
        evaluate.parzen(None, "ring8")


def test_cli_parzen_arguments(capsys):
    assert cli.main(["evaluate", "--metric", "parzen"]) == 2
    assert "or --real" in capsys.readouterr().err
    assert cli.main(["evaluate", "--real", "--dataset", "digits"]) == 2
    assert "only for --metric parzen, knn_kl, image or nn_distance" in capsys.readouterr().err


def test_knn_kl_evaluation_against_the_metric():
    """The evaluation is the metric on (test, samples), and the real-image reference
    is the metric on (test, train) at the same size."""
    train = tfgen.data.load_numpy("digits", "train")
    test = tfgen.data.load_numpy("digits", "test")
    model = FixedSamples(train[::-1])
    result = evaluate.knn_kl(model, "digits", n=200)
    from tfgen.metrics import knn_kl
    np.testing.assert_allclose(result["kl"], knn_kl(test[:200], train[::-1][:200]), rtol=1e-9)
    np.testing.assert_allclose(result["real_train_images"]["kl"], knn_kl(test[:200], train[:200]), rtol=1e-9)
    assert "kl" not in evaluate.knn_kl(None, "digits", n=200)


@pytest.fixture
def digits_feature_net(tmp_path):
    """A small fixed feature network for 8x8 digits, saved like a zoo entry."""
    import keras

    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(16, activation="relu", name="features"),
                            keras.layers.Dense(10, name="logits")])
    path = tmp_path / "net.keras"
    net.save(path)
    return str(path)


def test_image_scores_rank_real_images_above_noise(digits_feature_net):
    """Real training digits score a FID and KID near the floor against the test
    digits; uniform noise scores far worse; the numbers are those of the metric
    functions on the same features."""
    noise = np.random.default_rng(0).uniform(size=(300, 8, 8, 1)).astype("float32")
    result = evaluate.image_scores(FixedSamples(noise), "digits", n=300, feature_network=digits_feature_net,
                                   kid_subsets=5, kid_subset_size=100)
    real = result["real_train_images"]
    assert result["fid"] > 10 * real["fid"]
    assert result["kid"] > 10 * max(real["kid"], 1e-4)
    net = tfgen.metrics.FeatureNetwork.load(digits_feature_net)
    test = tfgen.data.load_numpy("digits", "test")[:300]
    want = tfgen.metrics.fid(test, noise, feature_network=net)
    np.testing.assert_allclose(result["fid"], want, rtol=1e-3)  # float32 features, two graphs
    assert 1.0 <= result["inception_score"] <= 10.0


def test_nearest_neighbour_flags_memorisation():
    """Samples that are training images sit at distance 0; test images do not."""
    train = tfgen.data.load_numpy("digits", "train")
    result = evaluate.nearest_neighbour(FixedSamples(train[:200]), "digits", n=200, backend="exact")
    assert result["mean"] == pytest.approx(0.0, abs=1e-3)
    assert result["test_images"]["mean"] > 1.0
    assert result["recall"] == 1.0


def test_latent_likelihood_favours_tiny_bandwidths_for_memorised_codes():
    """When the prior holds the codes of the very images that are then reversed
    (so the held-out codes coincide with training codes), the likelihood peaks
    at the smallest bandwidth and falls as it widens: the curve measures how
    close held-out codes come to the stored ones."""
    import keras

    from tfgen.distributions import KDE
    from tfgen.models import KDEGAN, networks

    keras.utils.set_random_seed(0)
    g = networks.mlp(3, (16,), (8, 8, 1), activation="tanh", output_activation="sigmoid")
    d = networks.mlp((8, 8, 1), (16,), 1)
    model = KDEGAN(g, d, KDE(3, capacity=50), reversal_steps=400, reversal_lr=20.0, threshold=np.inf)
    test = tfgen.data.load_numpy("digits", "test")[:50]
    model.fit_prior(test, batch_size=50)
    result = evaluate.latent_likelihood(model, "digits", n=50, bandwidths=(0.01, 0.1, 1.0), batch_size=50)
    assert [c["bandwidth"] for c in result["curve"]] == [0.01, 0.1, 1.0]
    assert result["best_bandwidth"] == 0.01
    means = [c["mean"] for c in result["curve"]]
    assert means[0] > means[1] > means[2]
    with pytest.raises(ValueError, match="generator and a prior"):
        evaluate.latent_likelihood(FixedSamples(test), "digits")


def test_latent_likelihood_of_a_plain_generator_model():
    """Models without a KDE prior (the GAN baseline of Fig. 10) get their
    training codes by reversing training images; test codes are then not copies
    of training codes, so the tiniest bandwidth does not win (it does when they
    are: the test above)."""
    import keras

    from tfgen.distributions import Gaussian
    from tfgen.models import GAN, networks

    keras.utils.set_random_seed(0)
    g = networks.mlp(3, (16,), (8, 8, 1), activation="tanh", output_activation="sigmoid")
    model = GAN(g, networks.mlp((8, 8, 1), (16,), 1), Gaussian(3))
    result = evaluate.latent_likelihood(model, "digits", n=40, n_train=60, batch_size=20,
                                        bandwidths=(0.001, 0.01, 0.1, 1.0))
    assert "60 training images" in result["protocol"] and "model_bandwidth" not in result
    means = [c["mean"] for c in result["curve"]]
    assert np.all(np.isfinite(means)) and result["best_bandwidth"] > 0.001
    with pytest.raises(ValueError, match="bandwidths"):
        evaluate.latent_likelihood(model, "digits", bandwidths=(0.0,))
