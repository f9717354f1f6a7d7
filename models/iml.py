"""IML: an implicit generative model with a learned base distribution
("Learning the Base Distribution in Implicit Generative Models", Algorithm 1;
``shared/papers/iml-learned-base-distribution.txt``).

Two stages, each a plain call:

1. ``model.fit(x)`` trains the autoencoder ``f_theta(f_enc(x)) ~ x`` on the
   reconstruction error ``mean((f(f_enc(x)) - x)^2)`` (the reference code's
   loss; the paper writes an unsquared norm);
2. ``model.fit_prior(x)`` fits the base distribution ``p_phi^0`` by maximum
   likelihood on the codes ``f_enc(x)``: a full-covariance
   :class:`~tfgen.distributions.GaussianMixture` for images (30 components,
   fitted on the first 3000 codes, as the reference ran it), a
   :class:`~tfgen.distributions.HiddenMarkovModel` over chunk sequences for audio.

Sampling is ``h ~ p^0``, ``x = f_theta(h)``; the export samples from the
fitted base distribution.

**A spectrally weighted loss for audio chunks** (``spectral_whitening=gamma``,
our option; the paper does not state its audio loss, the default 0 is the
squared error). Speech has most of its power below 1 kHz, so a squared-error
code spends itself there and drops the weak upper bands. Measured, weighting
them up does not help (``bench/iml_fsdd_loss.py``, docs/iml.md: at 20 epochs
gamma = 0.5 reconstructs at 4.2 dB against 6.9 and is recognised less often,
gamma = 1 stays at the zero output); the option is kept, off by default.
With ``gamma > 0`` the error's power in each frequency bin ``k`` of the chunk's
real DFT (length ``N``) is weighted by ``w_k ~ P_k^-gamma``, ``P_k`` the mean
power of the training chunks in that bin (:meth:`IML.adapt` sets it before
training)::

    loss = 1/N^2 sum_k m_k w_k |DFT(f(f_enc(x)) - x)_k|^2,

``m_k`` = 1 for the DC and Nyquist bins and 2 for the others, and the ``w_k``
scaled so that ``sum_k m_k w_k = N``: by Parseval, unit weights give the squared
error exactly, and a white error costs the same under every ``gamma``.
``gamma = 1`` asks for the same relative error in every bin; 0.5 is halfway.

**The invertible perceptron** (§4.1): ``x = sigma_inv(W2 tanh_inv(W1 h + b1) + b2)``
with ``W1: 600 x K``, ``W2: 784 x 600``, built by :func:`invertible_perceptron`.
Its encoder is the exact left inverse with the same weights,
``Linear^{-1}(y) = (W^T W)^{-1} W^T (y - b)`` after the inverse activation,
so no encoder network is passed. For it :meth:`IML.log_prob` gives the
implicit model's log-likelihood, eq. (6) with the rectangular Jacobian as
the paper computes it, layer by layer::

    log p(x) = log p^0(h) + sum_units log|d act^{-1}/dy| - 1/2 sum_layers log det(W^T W)

(``method="layerwise"``). The reference code leaves out the output sigmoid's
term (``match_code=True`` does the same). For a rectangular network the
layer-by-layer volume is an approximation of the true volume change
``sqrt(det(J^T J))`` of ``f`` at ``h`` (it is exact when every layer is
square); ``method="manifold"`` computes the latter from the Jacobian of ``f``
(``K`` forward-mode products), i.e. the density of the model on its
``K``-dimensional manifold at the point the encoder maps ``x`` to.

**Invertible activations** (eqs. 9-10): the activation is used inside
``[-t*, t*]`` and continued linearly outside, ``c t + b``, with ``c = act'(t*)``
and ``b`` chosen so the function is C1 at ``+-t*``. The printed domain
conditions are garbled (METHODS.md §5); we parameterise by the saturation
level, as the reference code does: preset ``"code"`` (what produced Table 1:
tanh saturating at 0.99, so ``c = 0.0199``; sigmoid at ``1 - 1e-4``,
``c = 9.999e-5``) and ``"paper"`` (``c = 0.01`` for both, the text's value).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import keras
import tensorflow as tf

from tfgen import distributions
from tfgen.models.base import GenerativeModel

_PRESETS = ("code", "paper")
_KINDS = ("tanh", "sigmoid")


# ---- the invertible activations (eqs. 9-10) ----------------------------------------------------
def _act(kind, t):
    return tf.tanh(t) if kind == "tanh" else tf.sigmoid(t)


@dataclass(frozen=True)
class InvertibleActivation:
    """``tanh`` or ``sigmoid`` on ``[-threshold, threshold]``, continued by the
    lines ``slope * t + bias_hi`` above and ``slope * t + bias_lo`` below, so
    the function and its first derivative are continuous (eqs. 9-10).

    Build it with :meth:`saturating` (from the saturation level, the
    reference code's parameterisation) or :meth:`with_slope` (from ``c``, the
    paper's), or :meth:`preset`.
    """

    kind: str
    threshold: float  # t*
    slope: float      # c = act'(t*)
    bias_hi: float    # act(t*) - c t*
    bias_lo: float    # act(-t*) + c t*

    @classmethod
    def saturating(cls, kind: str, level: float) -> "InvertibleActivation":
        """Linear beyond the point where the activation reaches ``level``
        (tanh: ``0 < level < 1``; sigmoid: ``1/2 < level < 1``)."""
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        low = 0.0 if kind == "tanh" else 0.5
        if not low < level < 1:
            raise ValueError(f"the {kind} saturation level must lie in ({low}, 1), got {level}")
        if kind == "tanh":
            t = math.atanh(level)
            c = 1.0 - level ** 2
            return cls(kind, t, c, level - c * t, -level + c * t)
        t = math.log(level / (1.0 - level))
        c = level * (1.0 - level)
        return cls(kind, t, c, level - c * t, (1.0 - level) + c * t)

    @classmethod
    def with_slope(cls, kind: str, slope: float) -> "InvertibleActivation":
        """Linear with slope ``c`` in the tails (the paper's ``c = 0.01``)."""
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        top = 1.0 if kind == "tanh" else 0.25  # the largest derivative
        if not 0 < slope < top:
            raise ValueError(f"the {kind} tail slope must lie in (0, {top}), got {slope}")
        # act'(t*) = c: tanh' = 1 - y^2; sigmoid' = y (1 - y).
        level = math.sqrt(1 - slope) if kind == "tanh" else (1 + math.sqrt(1 - 4 * slope)) / 2
        return cls.saturating(kind, level)

    @classmethod
    def preset(cls, kind: str, preset: str = "code") -> "InvertibleActivation":
        """``"code"``: tanh at 0.99, sigmoid at 1 - 1e-4 (the reference code,
        Table 1); ``"paper"``: slope 0.01 for both (the text)."""
        if preset not in _PRESETS:
            raise ValueError(f"preset must be one of {_PRESETS}, got {preset!r}")
        if preset == "paper":
            return cls.with_slope(kind, 0.01)
        return cls.saturating(kind, 0.99 if kind == "tanh" else 1 - 1e-4)

    @property
    def y_hi(self) -> float:
        return self.slope * self.threshold + self.bias_hi

    @property
    def y_lo(self) -> float:
        return -self.slope * self.threshold + self.bias_lo

    def __call__(self, t):
        t = tf.convert_to_tensor(t)
        ts = tf.clip_by_value(t, -self.threshold, self.threshold)  # no overflow in the unused branch
        return tf.where(t > self.threshold, self.slope * t + self.bias_hi,
                        tf.where(t < -self.threshold, self.slope * t + self.bias_lo, _act(self.kind, ts)))

    def _inside(self, y):
        """``y`` clipped strictly inside ``(y_lo, y_hi)``, where ``act^{-1}`` is smooth."""
        return tf.clip_by_value(y, self.y_lo, self.y_hi)

    def inverse(self, y):
        y = tf.convert_to_tensor(y)
        yi = self._inside(y)
        inner = tf.atanh(yi) if self.kind == "tanh" else tf.math.log(yi) - tf.math.log1p(-yi)
        return tf.where(y > self.y_hi, (y - self.bias_hi) / self.slope,
                        tf.where(y < self.y_lo, (y - self.bias_lo) / self.slope, inner))

    def log_abs_inverse_derivative(self, y):
        """``log |d act^{-1}(y) / dy|`` elementwise: ``-log(1 - y^2)`` (tanh) or
        ``-log(y (1 - y))`` (sigmoid) inside, ``-log c`` in the tails."""
        y = tf.convert_to_tensor(y)
        yi = self._inside(y)
        inner = -tf.math.log1p(-yi * yi) if self.kind == "tanh" else -tf.math.log(yi) - tf.math.log1p(-yi)
        tail = tf.fill(tf.shape(y), tf.cast(-math.log(self.slope), y.dtype))
        return tf.where((y > self.y_hi) | (y < self.y_lo), tail, inner)


@keras.saving.register_keras_serializable(package="tfgen")
class InvertibleDense(keras.layers.Layer):
    """``y = act(x W + b)`` with an invertible activation, and its exact left
    inverse ``x = (W^T W)^{-1} W^T (act^{-1}(y) - b)`` (paper: ``Linear^{-1}``;
    here ``W`` is stored in Keras' ``(in, units)`` layout, so the Gram matrix
    is ``kernel @ kernel^T``). Needs ``units >= in`` (a left inverse exists).

    ``kernel ~ N(0, 1)`` and ``bias = 0`` at init (the reference code's).
    """

    def __init__(self, units: int, activation: str = "tanh", preset: str = "code", **kwargs):
        # Always float32, also under a mixed-precision policy: the left inverse solves
        # with W^T W, and the sigmoid's tails have slope 1e-4 (METHODS.md §5).
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.units = int(units)
        if self.units <= 0:
            raise ValueError(f"units must be positive, got {units}")
        self.activation_name, self.preset = activation, preset
        self.act = InvertibleActivation.preset(activation, preset)

    def build(self, input_shape):
        d_in = int(input_shape[-1])
        if d_in > self.units:
            raise ValueError(f"InvertibleDense maps {d_in} inputs to {self.units} units: an invertible layer "
                             f"needs units >= inputs")
        self.kernel = self.add_weight(shape=(d_in, self.units), name="kernel",
                                      initializer=keras.initializers.RandomNormal(0.0, 1.0))
        self.bias = self.add_weight(shape=(self.units,), name="bias", initializer="zeros")

    def call(self, x):
        return self.act(tf.matmul(x, self.kernel) + self.bias)

    def _gram_cholesky(self):
        k = tf.convert_to_tensor(self.kernel)
        return tf.linalg.cholesky(tf.matmul(k, k, transpose_b=True))

    def inverse(self, y):
        """``(x, activation_log_det (n,), linear_log_det ())`` for ``y (n, units)``:
        the left inverse, ``sum_units log|d act^{-1}/dy|`` per example, and
        ``-1/2 log det(W^T W)`` (``= -sum log diag chol``)."""
        pre = self.act.inverse(y)
        chol = self._gram_cholesky()
        rhs = tf.matmul(self.kernel, pre - self.bias, transpose_b=True)  # W^T (y - b), (in, n)
        x = tf.transpose(tf.linalg.cholesky_solve(chol, rhs))
        act_ld = tf.reduce_sum(self.act.log_abs_inverse_derivative(y), axis=-1)
        lin_ld = -tf.reduce_sum(tf.math.log(tf.linalg.diag_part(chol)))
        return x, act_ld, lin_ld

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation_name,
                "preset": self.preset}


def invertible_perceptron(latent_dim: int, output_shape, hidden: int = 600, preset: str = "code",
                          name: str = "invertible_perceptron") -> keras.Model:
    """The IML paper's MNIST decoder (§4.1): ``K -> hidden (tanh_inv) -> prod(output_shape)
    (sigmoid_inv)``, reshaped to ``output_shape``. Outputs lie in (0, 1) up to the
    linear tails, like MNIST in [0, 1]."""
    output_shape = tuple(int(s) for s in output_shape)
    latent_dim, hidden = int(latent_dim), int(hidden)
    out_dim = int(np.prod(output_shape))
    if not latent_dim <= hidden <= out_dim:
        raise ValueError(f"an invertible perceptron needs latent_dim <= hidden <= output size, got "
                         f"{latent_dim} <= {hidden} <= {out_dim}")
    h = keras.Input((latent_dim,), name="h")
    y = InvertibleDense(hidden, "tanh", preset, name="linear_1")(h)
    y = InvertibleDense(out_dim, "sigmoid", preset, name="linear_2")(y)
    if len(output_shape) != 1:
        y = keras.layers.Reshape(output_shape, name="image", dtype="float32")(y)
    return keras.Model(h, y, name=name)


def _invertible_chain(generator) -> list | None:
    """The ``InvertibleDense`` layers of ``generator`` in forward order when it is
    a chain of them (plus reshapes), else ``None``."""
    layers = [l for l in generator.layers if not isinstance(l, keras.layers.InputLayer)]
    dense = [l for l in layers if isinstance(l, InvertibleDense)]
    others = [l for l in layers if not isinstance(l, (InvertibleDense, keras.layers.Reshape))]
    return dense if dense and not others else None


# ---- the model -------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="tfgen")
class IML(GenerativeModel):
    """Autoencoder + learned base distribution (Algorithm 1).

    Args:
      generator: the decoder ``f_theta``; an :func:`invertible_perceptron`
        when ``encoder`` is None (its left inverse is the encoder).
      prior: the base distribution ``p^0``: a ``GaussianMixture``, ``KDE`` or
        ``HiddenMarkovModel`` to be fitted by :meth:`fit_prior` (any fixed
        ``Prior`` also works, and is left as it is).
      encoder: ``f_enc``, a Keras model from data to codes, for a general
        autoencoder (``log_prob`` then is not available).
      match_code: leave the output activation's term out of ``log_prob``, as
        the reference code does.
      prior_fit_size: codes of the first this many training examples go to
        the base distribution fit (the reference: 3000; 0 means all).
      prior_fit_options: keyword arguments for the prior's ``fit`` (e.g. an
        HMM's ``max_iter``, ``tol``, ``reg``).
      spectral_whitening: ``gamma`` in ``[0, 1]`` of the spectrally weighted
        loss (module docstring) for 1-D chunks; 0 is the squared error. With
        ``gamma > 0`` call :meth:`adapt` on training chunks before ``fit``
        (the ``Trainer`` does).
    """

    _keras_args = ("generator", "prior", "encoder")

    def __init__(self, generator, prior, encoder=None, *, match_code: bool = False,
                 prior_fit_size: int = 3000, prior_fit_options: dict | None = None,
                 spectral_whitening: float = 0.0, **kwargs):
        super().__init__(generator, prior, **kwargs)
        self._chain = _invertible_chain(generator)
        if encoder is None and self._chain is None:
            raise ValueError("IML needs an encoder unless the generator is an invertible perceptron "
                             "(tfgen.models.iml.invertible_perceptron)")
        if encoder is not None:
            self._check_network(encoder, "encoder")
            if tuple(encoder.output_shape[1:]) != (self.latent_dim,):
                raise ValueError(f"the encoder must output codes of shape ({self.latent_dim},), got "
                                 f"{encoder.output_shape[1:]}")
        self.encoder = encoder
        self.match_code = bool(match_code)
        if int(prior_fit_size) < 0:
            raise ValueError(f"prior_fit_size must be >= 0, got {prior_fit_size}")
        self.prior_fit_size = int(prior_fit_size)
        self.prior_fit_options = dict(prior_fit_options or {})
        self.spectral_whitening = float(spectral_whitening)
        if not 0.0 <= self.spectral_whitening <= 1.0:
            raise ValueError(f"spectral_whitening must be in [0, 1], got {spectral_whitening}")
        if self.spectral_whitening:
            if len(self.data_shape) != 1:
                raise ValueError("spectral_whitening weights the DFT of 1-D chunks; the data have shape "
                                 f"{self.data_shape}")
            n = self.data_shape[0]
            # zeros until adapt(): fit refuses to train on an all-zero (not yet adapted) weighting
            self.spectral_weights = self.add_weight(shape=(n // 2 + 1,), initializer="zeros",
                                                    trainable=False, name="spectral_weights")
        self._declare_trackers("loss")

    @property
    def invertible(self) -> bool:
        """Whether the encoder is the generator's exact left inverse (and ``log_prob`` exists)."""
        return self.encoder is None

    # -- the two directions --------------------------------------------------------------
    def _inverse_chain(self, x):
        """``(h, act_log_det (n,), lin_log_det ())`` through the invertible layers backwards."""
        y = tf.reshape(tf.convert_to_tensor(x, tf.float32), [-1, int(np.prod(self.data_shape))])
        act_ld = tf.zeros(tf.shape(y)[:1])
        lin_ld = tf.constant(0.0)
        for i, layer in enumerate(reversed(self._chain)):
            y, a, l = layer.inverse(y)
            if not (i == 0 and self.match_code):  # the code skips the output activation
                act_ld += a
            lin_ld += l
        return y, act_ld, lin_ld

    def encode(self, x, training=False):
        """Codes ``f_enc(x) (n, latent_dim)`` of data ``x (n, *data_shape)``."""
        if self.encoder is not None:
            return self.encoder(x, training=training)
        return self._inverse_chain(x)[0]

    def reconstruct(self, x):
        """``f(f_enc(x))``."""
        return self.generate(self.encode(x))

    def log_prob(self, x, method: str = "layerwise"):
        """``(n,)`` log-likelihood of ``x`` under the implicit model, eq. (6).

        ``method="layerwise"``: the paper's per-layer formula (module
        docstring); ``"manifold"``: ``log p^0(h) - 1/2 log det(J^T J)`` with
        ``J = df/dh`` at ``h = f_enc(x)``.
        """
        if not self.invertible:
            raise ValueError("log_prob needs the invertible perceptron (this IML has a separate encoder)")
        if method not in ("layerwise", "manifold"):
            raise ValueError(f"method must be 'layerwise' or 'manifold', got {method!r}")
        x = tf.convert_to_tensor(x, tf.float32)
        if tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(f"x must have shape (n, {', '.join(map(str, self.data_shape))}), got {x.shape}")
        h, act_ld, lin_ld = self._inverse_chain(x)
        base = self.prior.log_prob(h)
        if method == "layerwise":
            return base + act_ld + lin_ld
        return base - 0.5 * _log_det_jtj(lambda z: tf.reshape(self.generate(z), [tf.shape(z)[0], -1]), h)

    # -- stage 1 --------------------------------------------------------------------------
    def _autoencoder_variables(self):
        variables = list(self.generator.trainable_variables)
        if self.encoder is not None:
            variables += self.encoder.trainable_variables
        return variables

    @staticmethod
    def _bin_multiplicity(n: int) -> np.ndarray:
        """``m_k``: how often bin ``k`` of a length-``n`` real DFT appears in the full spectrum."""
        m = np.full(n // 2 + 1, 2.0)
        m[0] = 1.0
        if n % 2 == 0:
            m[-1] = 1.0
        return m

    def adapt(self, x, batch_size: int = 4096):
        """Set the spectral loss weights from training chunks ``x (n, N)``:
        ``w_k = P_k^-gamma`` scaled so that ``sum_k m_k w_k = N`` (module
        docstring). Bins with less than 1e-8 of the largest bin's power are
        weighted as if they had that much, so silence-level bins do not take
        the loss over. Returns the weights. A no-op without ``spectral_whitening``."""
        if not self.spectral_whitening:
            return None
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1:] != self.data_shape or len(x) == 0:
            raise ValueError(f"adapt needs training chunks of shape (n, {self.data_shape[0]}), got {x.shape}")
        power = sum(np.sum(np.abs(np.fft.rfft(x[i:i + batch_size].astype(np.float64), axis=1)) ** 2, 0)
                    for i in range(0, len(x), batch_size)) / len(x)
        power = np.maximum(power, 1e-8 * power.max())
        if not power.max() > 0:
            raise ValueError("adapt: the chunks are all zero")
        w = power ** -self.spectral_whitening
        n = self.data_shape[0]
        w *= n / np.sum(self._bin_multiplicity(n) * w)
        self.spectral_weights.assign(w.astype(np.float32))
        return w

    def fit(self, *args, **kwargs):
        if self.spectral_whitening and not np.any(self.spectral_weights.numpy()):
            raise ValueError("this IML weights its loss by the training chunks' spectrum "
                             "(spectral_whitening > 0): call model.adapt(training_chunks) before fit")
        return super().fit(*args, **kwargs)

    def reconstruction_loss(self, recon, x):
        """The stage-1 loss: ``mean((recon - x)^2)`` (the reference code's), or
        its spectrally weighted form (module docstring)."""
        err = tf.cast(recon, tf.float32) - tf.cast(x, tf.float32)
        if not self.spectral_whitening:
            return tf.reduce_mean(tf.square(err))
        n = self.data_shape[0]
        spectrum = tf.signal.rfft(err)
        power = tf.square(tf.math.real(spectrum)) + tf.square(tf.math.imag(spectrum))
        weights = tf.constant(self._bin_multiplicity(n), tf.float32) * self.spectral_weights
        return tf.reduce_mean(tf.reduce_sum(power * weights, -1)) / float(n * n)

    def train_step(self, data):
        x = tf.cast(self._unpack(data), tf.float32)
        variables = self._autoencoder_variables()
        with tf.GradientTape() as tape:
            recon = tf.cast(self.generate(self.encode(x, training=True), training=True), tf.float32)
            loss = self.reconstruction_loss(recon, x)
            scaled = self.optimizer.scale_loss(self._replica_scale(loss))  # loss scaling under mixed_float16
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return self._track(loss=loss)

    # -- stage 2 --------------------------------------------------------------------------
    def encode_batches(self, x, batch_size: int = 1000) -> np.ndarray:
        """``encode`` over ``x`` in batches, as a NumPy array."""
        x = np.asarray(x, np.float32)
        if x.shape[1:] != self.data_shape:
            raise ValueError(f"x must have examples of shape {self.data_shape}, got {x.shape[1:]}")
        if len(x) == 0:
            raise ValueError("x is empty: no codes to fit a base distribution on")
        return np.concatenate([self.encode(x[i:i + batch_size]).numpy() for i in range(0, len(x), batch_size)])

    def fit_prior(self, x, *, seed=None, verbose=False) -> dict:
        """Stage 2: fit the base distribution on the codes of ``x``.

        ``x``: ``(n, *data_shape)`` examples (the first ``prior_fit_size`` are
        used), or, for a ``HiddenMarkovModel`` prior, a list of ``(T_i,
        *data_shape)`` sequences (each encoded chunk by chunk). Returns a dict:
        ``n`` (codes), ``seconds`` and the prior's fit report's summary.
        """
        t0 = time.time()
        if isinstance(self.prior, distributions.HiddenMarkovModel):
            if not isinstance(x, (list, tuple)):
                raise ValueError("an HMM base distribution is fitted on a list of sequences "
                                 "(arrays of shape (T_i, *data_shape))")
            codes = [self.encode_batches(s) for s in x]
            report = self.prior.fit(codes, seed=seed, verbose=verbose, **self.prior_fit_options)
            n = sum(len(c) for c in codes)
        else:
            if not hasattr(self.prior, "fit"):
                raise ValueError(f"the prior {type(self.prior).__name__} cannot be fitted")
            x = np.asarray(x, np.float32)
            if self.prior_fit_size:
                x = x[:self.prior_fit_size]
            codes = self.encode_batches(x)
            if isinstance(self.prior, distributions.KDE):
                report = self.prior.fit(codes, seed=seed, **self.prior_fit_options)
            else:
                report = self.prior.fit(codes, seed=seed, verbose=verbose, **self.prior_fit_options)
            n = len(codes)
        out = {"n": int(n), "seconds": round(time.time() - t0, 1)}
        if isinstance(report, dict):
            out.update({k: v for k, v in report.items() if k in (
                "log_likelihood", "n_iter", "converged", "best_init", "restart_log_likelihoods")})
        return out

    # -- serialization and export ------------------------------------------------------------
    def get_config(self):
        return {**super().get_config(), "match_code": self.match_code, "prior_fit_size": self.prior_fit_size,
                "prior_fit_options": self.prior_fit_options, "spectral_whitening": self.spectral_whitening}

    def export_endpoints(self) -> dict:
        """A ``log_prob(x) -> {"log_prob": (n,)}`` signature for the invertible perceptron."""
        if not self.invertible:
            return {}
        spec = tf.TensorSpec([None, *self.data_shape], tf.float32, name="x")
        return {"log_prob": (lambda x: {"log_prob": self.log_prob(x)}, [spec])}


def _log_det_jtj(f, h):
    """``log det(J^T J)`` per row of ``h (n, K)``, ``J = df/dh (L x K)``, by ``K``
    forward-mode Jacobian-vector products."""
    k = h.shape[-1]
    columns = []
    for i in range(k):
        tangent = tf.one_hot(tf.fill(tf.shape(h)[:1], i), k, dtype=h.dtype)
        with tf.autodiff.ForwardAccumulator(h, tangent) as acc:
            y = f(h)
        columns.append(acc.jvp(y))
    jac = tf.stack(columns, axis=-1)  # (n, L, K)
    jtj = tf.cast(tf.matmul(jac, jac, transpose_a=True), tf.float64)  # float64: J^T J squares J's scale
    chol = tf.linalg.cholesky(jtj)
    return tf.cast(2.0 * tf.reduce_sum(tf.math.log(tf.linalg.diag_part(chol)), axis=-1), tf.float32)
