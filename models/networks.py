"""Generator, critic and encoder builders used by the papers' experiments.

Every builder returns a built ``keras.Sequential`` (it starts with an
``Input``), so weights exist at construction and ``summary()`` works.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="tfgen")
class ScaledTanh(layers.Layer):
    """``a * tanh(x)``: SGN's hidden activation (SGN paper §3, a = 5)."""

    def __init__(self, a: float = 5.0, **kwargs):
        super().__init__(**kwargs)
        self.a = float(a)

    def call(self, x):
        return self.a * ops.tanh(x)

    def get_config(self):
        return {**super().get_config(), "a": self.a}


def activation_layer(name: str | None):
    """A layer for an activation named as the papers name them.

    ``relu``, ``leaky_relu`` (slope 0.2, DCGAN / KDE-GAN's discriminator),
    ``tanh``, ``scaled_tanh`` (SGN, a = 5), ``sigmoid``, ``linear``/None.
    """
    if name is None or name == "linear":
        return None
    if name == "leaky_relu":
        return layers.LeakyReLU(negative_slope=0.2)
    if name == "scaled_tanh":
        return ScaledTanh(5.0)
    if name in ("relu", "tanh", "sigmoid", "elu", "softplus", "gelu", "swish"):
        return layers.Activation(name)
    raise ValueError(
        f"unknown activation {name!r}; expected one of relu, leaky_relu, tanh, scaled_tanh, "
        "sigmoid, elu, softplus, gelu, swish, linear")


def _batch_norm():
    """BatchNorm with statistics over the *global* batch under ``tf.distribute``
    (``synchronized``), so R replicas train exactly as one device does at the
    same global batch (tests/harness.py checks it); a no-op on one device."""
    return layers.BatchNormalization(synchronized=True)


def _shape(shape) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)


def mlp(input_shape, hidden: Sequence[int], output_shape, *, activation: str = "relu",
        output_activation: str | None = None, batch_norm: bool = False,
        name: str = "mlp") -> keras.Sequential:
    """A multilayer perceptron ``input -> hidden... -> output``.

    ``input_shape`` / ``output_shape`` may be an int or a shape: an image
    input is flattened first, and an image-shaped output is reshaped at the
    end, so the same builder makes MNIST generators (GRAM App. A.3:
    ``100-600-600-800-784``, ReLU, BatchNorm, sigmoid output) and critics.
    """
    in_shape, out_shape = _shape(input_shape), _shape(output_shape)
    if any(h <= 0 for h in hidden):
        raise ValueError(f"hidden sizes must be positive, got {list(hidden)}")
    net = [keras.Input(in_shape)]
    if len(in_shape) > 1:
        net.append(layers.Flatten())
    for width in hidden:
        net.append(layers.Dense(width, use_bias=not batch_norm))
        if batch_norm:
            net.append(_batch_norm())
        act = activation_layer(activation)
        if act is not None:
            net.append(act)
    net.append(layers.Dense(math.prod(out_shape)))
    out_act = activation_layer(output_activation)
    if out_act is not None:
        net.append(out_act)
    if len(out_shape) > 1:
        net.append(layers.Reshape(out_shape))
    return keras.Sequential(net, name=name)


def mnist_conv_critic(input_shape=(28, 28, 1), output_dim: int = 100,
                      name: str = "critic") -> keras.Sequential:
    """GRAM's MNIST critic (paper Table 3): three 3x3 convolutions (16, 32, 32
    filters, padding 1), each followed by BatchNorm, ReLU and 2x2 max-pooling
    (28 -> 14 -> 7 -> 3), then a linear map ``288 -> output_dim``.
    """
    net = [keras.Input(_shape(input_shape))]
    if len(_shape(input_shape)) == 1:
        net.append(layers.Reshape((28, 28, 1)))
    for filters in (16, 32, 32):
        net += [layers.Conv2D(filters, 3, padding="same", use_bias=False),
                _batch_norm(), layers.Activation("relu"), layers.MaxPooling2D(2)]
    net += [layers.Flatten(), layers.Dense(output_dim)]
    return keras.Sequential(net, name=name)


def _upsampling_plan(side: int) -> tuple[int, int]:
    """(start side, number of stride-2 layers): 28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4)."""
    n_up = 0
    while side > 7 and side % 2 == 0:
        side //= 2
        n_up += 1
    if n_up == 0:
        raise ValueError(f"image side {side} cannot be reached by stride-2 upsampling")
    return side, n_up


def dcgan_generator(latent_dim: int, image_shape=(28, 28, 1), *, base_filters: int = 64,
                    output_activation: str = "sigmoid", name: str = "generator") -> keras.Sequential:
    """DCGAN generator (Radford et al. 2016): linear -> ``s x s x C`` -> stride-2
    transposed convolutions (4x4, SAME) halving the filters, BatchNorm + ReLU,
    a final transposed convolution to the image channels.

    Sigmoid output by default because tfgen's data live in [0, 1].
    """
    h, w, c = _shape(image_shape)
    if h != w:
        raise ValueError(f"dcgan_generator expects square images, got {image_shape}")
    start, n_up = _upsampling_plan(h)
    filters = base_filters * 2 ** (n_up - 1)
    net = [keras.Input((int(latent_dim),)), layers.Dense(start * start * filters, use_bias=False),
           _batch_norm(), layers.Activation("relu"), layers.Reshape((start, start, filters))]
    for _ in range(n_up - 1):
        filters //= 2
        net += [layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False),
                _batch_norm(), layers.Activation("relu")]
    net.append(layers.Conv2DTranspose(c, 4, strides=2, padding="same"))
    out_act = activation_layer(output_activation)
    if out_act is not None:
        net.append(out_act)
    return keras.Sequential(net, name=name)


def dcgan_critic(image_shape=(28, 28, 1), output_dim: int = 1, *, base_filters: int = 64,
                 batch_norm: bool = True, name: str = "critic") -> keras.Sequential:
    """DCGAN discriminator / critic: stride-2 4x4 convolutions doubling the
    filters, LeakyReLU(0.2), BatchNorm after the first, then a linear head of
    ``output_dim`` (1 for a GAN logit, K for a GRAM/MMD-GAN feature map).
    """
    h, w, _ = _shape(image_shape)
    if h != w:
        raise ValueError(f"dcgan_critic expects square images, got {image_shape}")
    _, n_down = _upsampling_plan(h)
    net = [keras.Input(_shape(image_shape))]
    filters = base_filters
    for i in range(n_down):
        net.append(layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=not (batch_norm and i)))
        if batch_norm and i:
            net.append(_batch_norm())
        net.append(layers.LeakyReLU(negative_slope=0.2))
        filters *= 2
    net += [layers.Flatten(), layers.Dense(output_dim)]
    return keras.Sequential(net, name=name)


# Audio (IML §4.2): three 1-D convolutions each way, the first encoder layer and
# the last decoder layer with filters of 200 samples (25 ms at 8 kHz).
_AUDIO_PLAN = ((200, 4), (25, 4), (9, 2))  # (kernel, stride) per encoder layer


def audio_conv_encoder(frame_length: int = 800, latent_dim: int = 80, *, filters: Sequence[int] = (32, 64, 64),
                       name: str = "encoder") -> keras.Sequential:
    """Windowed chunks ``(frame_length,)`` -> codes ``(latent_dim,)``: Conv1D
    layers (kernels 200, 25, 9; strides 4, 4, 2; ReLU), then a linear map.
    800 samples -> 200 -> 50 -> 25 positions."""
    if frame_length % 32:
        raise ValueError(f"frame_length must be a multiple of 32 (strides 4, 4, 2), got {frame_length}")
    net = [keras.Input((int(frame_length),)), layers.Reshape((int(frame_length), 1))]
    for f, (k, s) in zip(filters, _AUDIO_PLAN):
        net += [layers.Conv1D(f, k, strides=s, padding="same"), layers.Activation("relu")]
    net += [layers.Flatten(), layers.Dense(int(latent_dim))]
    return keras.Sequential(net, name=name)


def audio_conv_decoder(latent_dim: int = 80, frame_length: int = 800, *, filters: Sequence[int] = (32, 64, 64),
                       name: str = "decoder") -> keras.Sequential:
    """The mirror image of :func:`audio_conv_encoder`: a linear map to 25
    positions x ``filters[-1]``, transposed convolutions (kernels 9, 25, 200;
    strides 2, 4, 4), a linear output ``(frame_length,)``."""
    if frame_length % 32:
        raise ValueError(f"frame_length must be a multiple of 32 (strides 4, 4, 2), got {frame_length}")
    positions = int(frame_length) // 32
    net = [keras.Input((int(latent_dim),)), layers.Dense(positions * filters[-1]), layers.Activation("relu"),
           layers.Reshape((positions, filters[-1]))]
    outs = list(filters[:-1][::-1]) + [1]
    for f, (k, s) in zip(outs, _AUDIO_PLAN[::-1]):
        net.append(layers.Conv1DTranspose(f, k, strides=s, padding="same"))
        if f != 1:
            net.append(layers.Activation("relu"))
    net.append(layers.Reshape((int(frame_length),)))
    return keras.Sequential(net, name=name)
