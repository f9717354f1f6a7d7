"""Network builders: layer structure against the papers, numerics of the
activations, shapes, bad input, and a whole-model ``.keras`` round trip."""

import numpy as np
import keras
import pytest
from keras import layers

from tfgen.models import networks
from tfgen.models.networks import ScaledTanh, activation_layer


def _of(model, kind):
    return [l for l in model.layers if isinstance(l, kind)]


def _rand(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# --- activations -------------------------------------------------------------------------------

def test_scaled_tanh_numerics_and_config():
    x = np.linspace(-3, 3, 13, dtype="float32")
    np.testing.assert_allclose(ScaledTanh(5)(x).numpy(), 5 * np.tanh(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ScaledTanh(2.5)(x).numpy(), 2.5 * np.tanh(x), rtol=1e-6, atol=1e-6)
    layer = ScaledTanh(3.0)
    assert ScaledTanh.from_config(layer.get_config()).a == 3.0
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, ScaledTanh) and restored.a == 3.0
    np.testing.assert_allclose(restored(x).numpy(), 3 * np.tanh(x), rtol=1e-6, atol=1e-6)


def test_activation_layer_names():
    x = np.array([-2.0, -0.5, 0.0, 1.5], "float32")
    np.testing.assert_allclose(activation_layer("leaky_relu")(x).numpy(), np.where(x > 0, x, 0.2 * x), rtol=1e-6)
    np.testing.assert_allclose(activation_layer("scaled_tanh")(x).numpy(), 5 * np.tanh(x), rtol=1e-6)
    np.testing.assert_allclose(activation_layer("relu")(x).numpy(), np.maximum(x, 0))
    np.testing.assert_allclose(activation_layer("sigmoid")(x).numpy(), 1 / (1 + np.exp(-x)), rtol=1e-6)
    assert activation_layer(None) is None and activation_layer("linear") is None


def test_activation_layer_unknown_name_lists_options():
    with pytest.raises(ValueError, match="unknown activation 'nope'") as info:
        activation_layer("nope")
    for option in ("relu", "leaky_relu", "tanh", "scaled_tanh", "sigmoid", "linear"):
        assert option in str(info.value)


# --- mlp ---------------------------------------------------------------------------------------

def test_mlp_widths_and_forward_numerics():
    net = networks.mlp(6, [16, 8], 3, activation="relu", output_activation="sigmoid")
    dense = _of(net, layers.Dense)
    assert [d.units for d in dense] == [16, 8, 3]
    assert [tuple(d.kernel.shape) for d in dense] == [(6, 16), (16, 8), (8, 3)]
    assert net.output_shape == (None, 3)
    assert _of(net, layers.BatchNormalization) == []
    # The forward pass is sigmoid(relu(relu(x W1 + b1) W2 + b2) W3 + b3).
    x = _rand((5, 6))
    h = x
    for i, d in enumerate(dense):
        h = h @ d.kernel.numpy() + d.bias.numpy()
        h = np.maximum(h, 0) if i < 2 else 1 / (1 + np.exp(-h))
    np.testing.assert_allclose(net(x).numpy(), h, rtol=1e-5, atol=1e-6)


def test_mlp_image_input_is_flattened():
    net = networks.mlp((8, 8, 1), [16], 4)
    assert isinstance(net.layers[0], layers.Flatten)
    assert tuple(_of(net, layers.Dense)[0].kernel.shape) == (64, 16)
    assert net.input_shape == (None, 8, 8, 1)
    assert net(_rand((2, 8, 8, 1))).shape == (2, 4)


def test_mlp_image_output_is_reshaped():
    net = networks.mlp(4, [16], (8, 8, 1), output_activation="sigmoid")
    assert _of(net, layers.Dense)[-1].units == 64
    assert isinstance(net.layers[-1], layers.Reshape)
    assert net.output_shape == (None, 8, 8, 1)
    y = net(_rand((3, 4)) * 10).numpy()
    assert y.shape == (3, 8, 8, 1) and y.min() >= 0 and y.max() <= 1


def test_mlp_batch_norm_inserts_bn_and_drops_hidden_bias():
    net = networks.mlp(4, [16, 8], 2, batch_norm=True, activation="scaled_tanh")
    dense = _of(net, layers.Dense)
    assert [d.use_bias for d in dense] == [False, False, True]  # the output layer keeps its bias
    assert dense[0].bias is None
    kinds = [type(l) for l in net.layers]
    assert kinds == [layers.Dense, layers.BatchNormalization, ScaledTanh,
                     layers.Dense, layers.BatchNormalization, ScaledTanh, layers.Dense]
    plain = networks.mlp(4, [16, 8], 2)
    assert all(d.use_bias for d in _of(plain, layers.Dense))


def test_mlp_bad_hidden_raises():
    with pytest.raises(ValueError, match="hidden"):
        networks.mlp(4, [16, 0], 2)


# --- GRAM's MNIST critic (paper Table 3) ------------------------------------------------------

def test_mnist_conv_critic_structure():
    net = networks.mnist_conv_critic()
    kinds = [type(l) for l in net.layers]
    block = [layers.Conv2D, layers.BatchNormalization, layers.Activation, layers.MaxPooling2D]
    assert kinds == block * 3 + [layers.Flatten, layers.Dense]
    convs = _of(net, layers.Conv2D)
    assert [c.filters for c in convs] == [16, 32, 32]
    assert all(c.kernel_size == (3, 3) and c.padding == "same" and c.strides == (1, 1) for c in convs)
    assert all(a.get_config()["activation"] == "relu" for a in _of(net, layers.Activation))
    assert all(p.pool_size == (2, 2) for p in _of(net, layers.MaxPooling2D))
    flatten, dense = net.layers[-2], net.layers[-1]
    assert flatten.output.shape[1:] == (288,)  # 28 -> 14 -> 7 -> 3, 3 * 3 * 32
    assert dense.units == 100 and tuple(dense.kernel.shape) == (288, 100)
    assert net.output_shape == (None, 100)
    assert net(_rand((2, 28, 28, 1))).shape == (2, 100)


def test_mnist_conv_critic_accepts_flat_input():
    image_net = networks.mnist_conv_critic()
    flat_net = networks.mnist_conv_critic(784)
    assert flat_net.input_shape == (None, 784) and flat_net.output_shape == (None, 100)
    flat_net.set_weights(image_net.get_weights())
    x = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(flat_net(x.reshape(2, 784)).numpy(), image_net(x).numpy(), rtol=1e-5, atol=1e-5)


# --- DCGAN ---------------------------------------------------------------------------------------

def test_dcgan_generator_mnist_shape_and_range():
    net = networks.dcgan_generator(16, (28, 28, 1))
    assert net.output_shape == (None, 28, 28, 1)
    y = net(_rand((3, 16)) * 5).numpy()
    assert y.shape == (3, 28, 28, 1)
    assert y.min() >= 0 and y.max() <= 1
    assert net.layers[-1].get_config()["activation"] == "sigmoid"


def test_dcgan_generator_cifar_shape():
    net = networks.dcgan_generator(8, (32, 32, 3), base_filters=8)
    assert net.output_shape == (None, 32, 32, 3)
    assert len(_of(net, layers.Conv2DTranspose)) == 3  # 4 -> 8 -> 16 -> 32


@pytest.mark.parametrize("shape", [(28, 32, 1), (32, 28, 3)])
def test_dcgan_generator_non_square_raises(shape):
    with pytest.raises(ValueError, match="square"):
        networks.dcgan_generator(8, shape)


@pytest.mark.parametrize("side", [7, 9])
def test_dcgan_unreachable_side_raises(side):
    with pytest.raises(ValueError, match="side"):
        networks.dcgan_generator(8, (side, side, 1))
    with pytest.raises(ValueError, match="side"):
        networks.dcgan_critic((side, side, 1))


def test_dcgan_critic_shape_and_leaky_relu():
    net = networks.dcgan_critic((28, 28, 1), 1)
    assert net.output_shape == (None, 1)
    assert net(_rand((2, 28, 28, 1))).shape == (2, 1)
    leaky = _of(net, layers.LeakyReLU)
    assert len(leaky) == 2
    x = np.array([-1.0, 2.0], "float32")
    for l in leaky:
        assert l.negative_slope == pytest.approx(0.2)
        np.testing.assert_allclose(l(x).numpy(), [-0.2, 2.0], rtol=1e-6)
    convs = _of(net, layers.Conv2D)
    assert [c.filters for c in convs] == [64, 128]
    assert all(c.strides == (2, 2) and c.kernel_size == (4, 4) for c in convs)


# --- saving --------------------------------------------------------------------------------------

@pytest.mark.parametrize("build", [
    lambda: networks.dcgan_generator(8, (28, 28, 1), base_filters=8),
    lambda: networks.mlp(4, [16], (8, 8, 1), activation="scaled_tanh", batch_norm=True,
                         output_activation="sigmoid", name="generator"),
], ids=["dcgan", "mlp-scaled-tanh-bn"])
def test_generator_keras_round_trip(build, tmp_path):
    keras.utils.set_random_seed(0)
    net = build()
    z = _rand((4, net.input_shape[-1]))
    net(_rand((16, net.input_shape[-1]), 1), training=True)  # move the BatchNorm statistics off their init
    want = net(z, training=False).numpy()
    path = tmp_path / "generator.keras"
    net.save(path)
    loaded = keras.models.load_model(path)
    assert [type(l) for l in loaded.layers] == [type(l) for l in net.layers]
    np.testing.assert_allclose(loaded(z, training=False).numpy(), want, rtol=1e-6, atol=1e-6)
