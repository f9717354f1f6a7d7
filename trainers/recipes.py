"""Named recipes: each paper experiment as a typed, immutable config.

``get("gram-ring8")`` returns a ``Recipe``; ``recipe.replace(steps=100)``
gives a variant; ``build_model(recipe)`` builds and compiles the model it
describes. Recipes are data: the card of a zoo entry stores ``to_dict()``.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any

import keras

from tfgen import distributions, jsonio
from tfgen.models import GAN, GRAM, IML, KDEGAN, MMDGAN, SGN, VAE, WGANGP, LevelSetGAN, MMDNet, networks
from tfgen.models.iml import invertible_perceptron


@dataclass(frozen=True)
class NetworkSpec:
    """How to build one network. ``kind``: ``mlp``, ``mnist_conv_critic``,
    ``dcgan_generator``, ``dcgan_critic``, ``invertible_perceptron`` (IML),
    ``audio_conv_encoder``, ``audio_conv_decoder`` (IML audio);
    ``hidden``/``activation``/... are
    the builder's arguments (see ``tfgen.models.networks``)."""

    kind: str = "mlp"
    hidden: tuple[int, ...] = (100, 100)
    activation: str = "relu"
    output_activation: str | None = None
    batch_norm: bool = False
    output_dim: int | None = None  # critics: feature dimension K
    base_filters: int = 64         # DCGAN builders: filters of the widest-resolution layer
    preset: str = "code"           # invertible_perceptron: "code" | "paper" activation constants

    def build(self, input_shape, output_shape, name):
        if self.kind == "audio_conv_encoder":
            return networks.audio_conv_encoder(input_shape if isinstance(input_shape, int) else input_shape[0],
                                               output_shape, name=name)
        if self.kind == "audio_conv_decoder":
            return networks.audio_conv_decoder(input_shape, output_shape, name=name)
        if self.kind == "invertible_perceptron":
            shape = (output_shape,) if isinstance(output_shape, int) else output_shape
            return invertible_perceptron(input_shape, shape, hidden=self.hidden[0], preset=self.preset, name=name)
        if self.kind == "mlp":
            return networks.mlp(input_shape, self.hidden, output_shape, activation=self.activation,
                                output_activation=self.output_activation,
                                batch_norm=self.batch_norm, name=name)
        if self.kind == "mnist_conv_critic":
            return networks.mnist_conv_critic(input_shape, output_shape, name=name)
        if self.kind == "dcgan_generator":
            return networks.dcgan_generator(input_shape, output_shape, name=name,
                                            base_filters=self.base_filters,
                                            output_activation=self.output_activation or "sigmoid")
        if self.kind == "dcgan_critic":
            return networks.dcgan_critic(input_shape, output_shape, base_filters=self.base_filters,
                                         batch_norm=self.batch_norm, name=name)
        raise ValueError(f"unknown network kind {self.kind!r}")


@dataclass(frozen=True)
class OptimizerSpec:
    name: str = "adam"
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    # (factor, patience in epochs of ``steps_per_epoch``): the run's Trainer multiplies the
    # rate by ``factor`` after ``patience`` epochs without a better training loss
    # (``trainers.callbacks.ReduceLROnPlateau``); None keeps it constant.
    plateau: tuple[float, int] | None = None

    def __post_init__(self):
        if isinstance(self.learning_rate, bool) or not isinstance(self.learning_rate, (int, float)) \
                or not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if self.plateau is not None:  # a list after a JSON round trip
            from tfgen.trainers.callbacks import check_plateau

            factor, patience = self.plateau
            check_plateau(factor, patience)
            object.__setattr__(self, "plateau", (float(factor), int(patience)))

    def build(self) -> keras.optimizers.Optimizer:
        if self.name == "adam":
            return keras.optimizers.Adam(self.learning_rate, beta_1=self.beta_1, beta_2=self.beta_2)
        if self.name == "rmsprop":
            return keras.optimizers.RMSprop(self.learning_rate)
        if self.name == "sgd":
            return keras.optimizers.SGD(self.learning_rate)
        raise ValueError(f"unknown optimizer {self.name!r}; expected adam, rmsprop or sgd")


@dataclass(frozen=True)
class Recipe:
    """One experiment: data, model, optimisation, length, seed."""

    name: str
    method: str                      # gram, mmd_net, sgn, gan, kde_gan, level_set, wgan_gp, mmd_gan, iml, vae
    dataset: str
    batch_size: int
    steps: int                       # total optimizer steps
    latent_dim: int
    prior: str = "gaussian"          # "gaussian" | "uniform" | "binary_mixture" | "kde" | "gmm" | "hmm"
    prior_options: dict = field(default_factory=dict)
    generator: NetworkSpec = NetworkSpec()
    critic: NetworkSpec | None = None
    critic_dim: int = 10
    decoder: NetworkSpec | None = None  # MMD-GAN: critic features -> data
    encoder: NetworkSpec | None = None  # VAE (data -> 2K), IML with a general autoencoder (data -> K)
    model_options: dict = field(default_factory=dict)
    optimizer: OptimizerSpec = OptimizerSpec()
    critic_optimizer: OptimizerSpec | None = None
    dataset_options: dict = field(default_factory=dict)
    train_split: str = "train"       # e.g. "train[:55000]" to hold out validation images
    steps_per_epoch: int = 100       # the logging / checkpoint / picture period
    sample_every: int = 5            # epochs between sample pictures
    seed: int = 0
    source: str = ""                 # where the settings come from

    def __post_init__(self):
        if self.critic_optimizer is not None and self.critic_optimizer.plateau is not None:
            raise ValueError("a plateau schedule goes on the recipe's optimizer, and the Trainer applies it to "
                             "every optimizer of the model; critic_optimizer.plateau must be None")

    def replace(self, **changes) -> "Recipe":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        # recipe.json writes non-finite numbers as "inf"/"-inf"/"nan" (tfgen.jsonio)
        d = jsonio.restore(dict(d))
        d["generator"] = NetworkSpec(**{**d["generator"], "hidden": tuple(d["generator"]["hidden"])})
        for key in ("critic", "decoder", "encoder"):
            if d.get(key):
                d[key] = NetworkSpec(**{**d[key], "hidden": tuple(d[key]["hidden"])})
        d["optimizer"] = OptimizerSpec(**d["optimizer"])
        if d.get("critic_optimizer"):
            d["critic_optimizer"] = OptimizerSpec(**d["critic_optimizer"])
        return cls(**d)


def build_prior(recipe: Recipe) -> distributions.Prior:
    if recipe.prior == "gaussian":
        return distributions.Gaussian(recipe.latent_dim, **recipe.prior_options)
    if recipe.prior == "uniform":
        return distributions.Uniform(recipe.latent_dim, **recipe.prior_options)
    if recipe.prior == "binary_mixture":
        return distributions.BinaryMeanMixture(recipe.latent_dim, **recipe.prior_options)
    if recipe.prior == "kde":
        return distributions.KDE(recipe.latent_dim, **recipe.prior_options)
    if recipe.prior == "gmm":
        return distributions.GaussianMixture(recipe.latent_dim, **recipe.prior_options)
    if recipe.prior == "hmm":
        return distributions.HiddenMarkovModel(recipe.latent_dim, **recipe.prior_options)
    raise ValueError(f"unknown prior {recipe.prior!r}; expected 'gaussian', 'uniform', "
                     "'binary_mixture', 'kde', 'gmm' or 'hmm'")


def build_model(recipe: Recipe, data_shape) -> keras.Model:
    """Build and compile the recipe's model (call inside a strategy scope)."""
    data_shape = tuple(data_shape)
    out = data_shape[0] if len(data_shape) == 1 else data_shape
    generator = recipe.generator.build(recipe.latent_dim, out, "generator")
    prior = build_prior(recipe)
    if recipe.method == "gram":
        critic = recipe.critic.build(out, recipe.critic_dim, "critic")
        model = GRAM(generator, critic, prior, seed=recipe.seed, **recipe.model_options)
        model.compile(optimizer=recipe.optimizer.build(),
                      critic_optimizer=(recipe.critic_optimizer or recipe.optimizer).build())
    elif recipe.method == "mmd_net":
        model = MMDNet(generator, prior, seed=recipe.seed, **recipe.model_options)
        model.compile(optimizer=recipe.optimizer.build())
    elif recipe.method == "sgn":
        model = SGN(generator, prior, seed=recipe.seed, **recipe.model_options)
        model.compile(optimizer=recipe.optimizer.build())
    elif recipe.method in ("gan", "kde_gan"):
        discriminator = recipe.critic.build(out, 1, "discriminator")
        cls = GAN if recipe.method == "gan" else KDEGAN
        model = cls(generator, discriminator, prior, seed=recipe.seed, **recipe.model_options)
        model.compile(optimizer=recipe.optimizer.build(),
                      discriminator_optimizer=(recipe.critic_optimizer or recipe.optimizer).build())
    elif recipe.method in ("level_set", "wgan_gp", "mmd_gan"):
        if recipe.method == "mmd_gan":
            critic = recipe.critic.build(out, recipe.critic_dim, "critic")
            decoder = (recipe.decoder.build(recipe.critic_dim, out, "decoder")
                       if recipe.decoder is not None else None)
            model = MMDGAN(generator, critic, prior, decoder, seed=recipe.seed, **recipe.model_options)
        else:
            critic = recipe.critic.build(out, 1, "critic")
            cls = LevelSetGAN if recipe.method == "level_set" else WGANGP
            model = cls(generator, critic, prior, seed=recipe.seed, **recipe.model_options)
        model.compile(optimizer=recipe.optimizer.build(),
                      critic_optimizer=(recipe.critic_optimizer or recipe.optimizer).build())
    elif recipe.method == "iml":
        encoder = recipe.encoder.build(out, recipe.latent_dim, "encoder") if recipe.encoder else None
        model = IML(generator, prior, encoder, seed=recipe.seed, **recipe.model_options)
        model.compile(optimizer=recipe.optimizer.build())
    elif recipe.method == "vae":
        encoder = recipe.encoder.build(out, 2 * recipe.latent_dim, "encoder")
        model = VAE(generator, prior, encoder, seed=recipe.seed, **recipe.model_options)
        model.compile(optimizer=recipe.optimizer.build())
    else:
        raise ValueError(f"unknown method {recipe.method!r}")
    return model


_ADAM_HALF = OptimizerSpec("adam", 1e-3, beta_1=0.5)
_IML_GMM = {"n_components": 30, "n_init": 20, "max_iter": 200, "init": "kmeans"}
_RING_NETS = dict(generator=NetworkSpec("mlp", (100, 100)), critic=NetworkSpec("mlp", (100, 100)))
_MNIST_G = NetworkSpec("mlp", (600, 600, 800), activation="relu", output_activation="sigmoid",
                       batch_norm=True)

_SGN_G = NetworkSpec("mlp", (300,), activation="scaled_tanh", output_activation="sigmoid")
_SGN_SOURCE = ("SGN §3: G 100-300 (5 tanh)-784, sigmoid output (METHODS.md §1 rec.; unstated in the "
               "paper), k = 1, exact search, fresh pool every step, N = B = {n}, SGD 0.2 on the "
               "gradient divided by its global norm; {prior}. The paper trains ~2000 epochs; the "
               "last 5000 training images are held out as the li2015 Parzen validation set.")


def _sgn_mnist(name, prior, prior_options, pool_size, prior_text, **model_options):
    n = pool_size
    return Recipe(name, "sgn", "mnist", batch_size=1000, steps=2000 * 55, latent_dim=100,
                  prior=prior, prior_options=prior_options, generator=_SGN_G,
                  model_options={"pool_size": pool_size, "k": 1, **model_options},
                  optimizer=OptimizerSpec("sgd", 0.2), train_split="train[:55000]",
                  steps_per_epoch=55, sample_every=50,
                  source=_SGN_SOURCE.format(n=n, prior=prior_text)
                  + (f" Candidate search: {model_options}." if model_options else ""))


_U01 = {"low": 0.0, "high": 1.0}
_GM32 = {"n_components": 32, "scale": 0.1}
_U_TEXT = "z ~ U[0,1]^100"
_GM_TEXT = "z ~ GM of 32 components, binary means in {0,1}^100 drawn at setup, sigma 0.1"

# KDE-GAN paper App. A: RMSProp 3e-4 for G and D, batch 100, z-dim 200 ~ N(0, I),
# 3 epochs on MNIST; reversal lr 1.0, MMD threshold 1e-4, kernel 1e-4 (read as
# gamma), z0 ~ N(0, (1e-4)^2 I), at most 50 steps (METHODS.md §3).
_GAN_OPT = OptimizerSpec("rmsprop", 3e-4)
_GAN_DCGAN = dict(generator=NetworkSpec("dcgan_generator", (), output_activation="sigmoid"),
                  critic=NetworkSpec("dcgan_critic", (), batch_norm=True))
_GAN_MLP = dict(generator=NetworkSpec("mlp", (256, 512, 1024), activation="relu", output_activation="sigmoid",
                                      batch_norm=True),
                critic=NetworkSpec("mlp", (512, 256), activation="leaky_relu"))
# 2000 codes of 200 floats: 1.6 MB in each of model.keras and the export
_KDE_PRIOR = dict(prior="kde", prior_options={"capacity": 2000, "bandwidth": 0.1})
_REVERSAL = {"reversal_steps": 50, "reversal_lr": 1.0, "threshold": 1e-4, "gamma": 1e-4,
             "init_scale": 1e-4}
_DCGAN_TEXT = ("DCGAN sized for 28x28 on CPU: G 200 -> 7x7x128 -> 14x14x64 -> 28x28x1 (4x4 "
               "stride-2 deconvs, BN, ReLU, sigmoid), D 28 -> 14x14x64 -> 7x7x128 (4x4 stride-2, "
               "BN after the second, LeakyReLU 0.2) -> logit; the paper's 4x4x512-256-128-64 stack is for 32x32 images")
_MLP_TEXT = ("MLP variant for speed: G 200-256-512-1024-784 ReLU + BatchNorm, sigmoid; D 784-512-256-1 "
             "LeakyReLU 0.2 (without BatchNorm in G the 200-256-512 generator collapsed to one image "
             "in 1800 steps: MMD^2 vs test 0.43; with it 0.026 after 900 steps)")


def _gan_mnist(name, method, nets, text, model_options=None):
    kde = method == "kde_gan"
    options = model_options or (dict(_REVERSAL) if kde else {})
    paper = ("KDE-GAN paper App. A: " if kde else "GAN baseline of the KDE-GAN paper, App. A: ")
    reversal = (f"; reversal lr 1.0, MMD threshold {options.get('threshold'):g} (paper: 1e-4), gamma 1e-4, z0 ~ N(0, 1e-8 I), at most "
                f"{options.get('reversal_steps')} steps (paper: 50); KDE bandwidth 0.1 (unstated; "
                "METHODS.md §3), the codes of 2000 training images in the final prior") if kde else ""
    return Recipe(name, method, "mnist", batch_size=100, steps=1800, latent_dim=200,
                  optimizer=_GAN_OPT, steps_per_epoch=300, sample_every=2, model_options=options,
                  source=paper + "RMSProp 3e-4 (G and D), batch 100, z 200-d ~ N(0, I), non-saturating "
                  "G loss, 3 epochs (1800 steps)" + reversal + ". " + text + ".",
                  **(_KDE_PRIOR if kde else {}), **nets)


# -- the ring of 8: one architecture for every method (the GRAM paper's GAN
# baseline uses "the same exact architecture and hyperparameters" as GRAM),
# each method's own published optimiser and loss settings where they exist.
_RING_SOURCE = ("Ring of 8 (radius 2, std 0.2), G 20-d N(0, I) -> 100-100 ReLU -> 2 as gram-ring8, "
                "batch 200 data points per generator step, 4000 steps; ")
# Level Set GAN §4 trains the toy with 2-d uniform noise; its optimiser is RMSProp (Alg. 1),
# rate and n_gen unstated (METHODS.md §4 rec.: WGAN's RMSProp 5e-5, n_gen = 5).
_LEVEL_SET_TEXT = ("Level Set GAN §4 / Alg. 1: RMSProp, n_gen generator steps per critic step, scalar linear "
                   "critic head, loss means instead of sums; rate and n_gen unstated (METHODS.md §4)")
_WGAN_GP_TEXT = ("WGAN-GP (Gulrajani et al. 2017) Alg. 1: Adam 1e-4, beta1 0.5 / beta2 0.9 as their "
                 "released code, n_critic = 5, eps ~ U[0, 1] per example; the critic has no BatchNorm")
_MMD_GAN_TEXT = ("MMD-GAN (Li et al. 2017) code (METHODS.md §2): RMSProp 5e-5, n_critic = 5, encoder "
                 "weights clipped to 0.01, lambda_rg 16, lambda_ae 8, kernels sigma 1-2-4-8-16 on the "
                 "encoder's features; the 100-critic-step phases are not run (models/mmd_gan.py)")
_RING_G = NetworkSpec("mlp", (100, 100))
_RING_D = NetworkSpec("mlp", (100, 100), activation="leaky_relu")
_RING_EXTRA = [
    Recipe("gan-ring8", "gan", "ring8", batch_size=200, steps=4000, latent_dim=20,
           generator=_RING_G, critic=_RING_D, optimizer=_ADAM_HALF, sample_every=10,
           source=_RING_SOURCE + "GRAM paper §3.4: the GAN baseline with GRAM's architecture and "
           "optimiser (Adam 1e-3, beta1 0.5), non-saturating loss, LeakyReLU discriminator."),
    Recipe("kde-gan-ring8", "kde_gan", "ring8", batch_size=200, steps=4000, latent_dim=20,
           generator=_RING_G, critic=_RING_D, optimizer=_ADAM_HALF, sample_every=10,
           prior="kde", prior_options={"capacity": 2000, "bandwidth": 0.1},
           model_options=dict(_REVERSAL),
           source=_RING_SOURCE + "gan-ring8 with the KDE-GAN paper's Alg. 2: reversal lr 1.0, "
           "tau = gamma = 1e-4, at most 50 steps, KDE bandwidth 0.1 over the batch's codes."),
    Recipe("sgn-ring8", "sgn", "ring8", batch_size=200, steps=4000, latent_dim=20,
           generator=_RING_G, model_options={"pool_size": 1000, "k": 1},
           optimizer=OptimizerSpec("sgd", 0.2), sample_every=10,
           source=_RING_SOURCE + "SGN §3's optimiser (SGD 0.2 on the globally normalised gradient), "
           "k = 1, a fresh pool of N = 1000 samples every step."),
    Recipe("level-set-ring8", "level_set", "ring8", batch_size=200, steps=4000, latent_dim=2,
           prior="uniform", prior_options={"low": -1.0, "high": 1.0},
           generator=_RING_G, critic=_RING_D, optimizer=OptimizerSpec("rmsprop", 5e-5),
           model_options={"n_gen": 5}, sample_every=10,
           source=_RING_SOURCE.replace("20-d N(0, I)", "2-d U[-1, 1] (the paper's toy noise)")
           + _LEVEL_SET_TEXT + "."),
    Recipe("wgan-gp-ring8", "wgan_gp", "ring8", batch_size=5 * 200, steps=4000, latent_dim=20,
           generator=_RING_G, critic=NetworkSpec("mlp", (100, 100)),
           optimizer=OptimizerSpec("adam", 1e-4, beta_1=0.5, beta_2=0.9),
           model_options={"n_critic": 5, "gp_weight": 0.1}, sample_every=10,
           source=_RING_SOURCE + _WGAN_GP_TEXT + "; lambda = 0.1, the value of their released toy "
           "script (10 on images); a dataset batch of 5 x 200 (one per critic step)."),
    Recipe("mmd-gan-ring8", "mmd_gan", "ring8", batch_size=6 * 200, steps=4000, latent_dim=20,
           generator=_RING_G, critic=NetworkSpec("mlp", (100, 100)), critic_dim=10,
           decoder=NetworkSpec("mlp", (100, 100)), optimizer=OptimizerSpec("rmsprop", 5e-5),
           sample_every=10,
           source=_RING_SOURCE + _MMD_GAN_TEXT + "; encoder 2-100-100-10, decoder 10-100-100-2; a "
           "dataset batch of 6 x 200 (5 critic steps and the generator step)."),
]

# -- MNIST: DCGAN recipes (GPU-sized) and MLP variants (CPU-sized, as gan-mnist-mlp)
_WGAN_DCGAN = dict(generator=NetworkSpec("dcgan_generator", (), output_activation="sigmoid"),
                   critic=NetworkSpec("dcgan_critic", (), batch_norm=False))
_WGAN_MLP = dict(generator=_GAN_MLP["generator"],
                 critic=NetworkSpec("mlp", (512, 256), activation="leaky_relu"))
_MNIST_ADV = [
    Recipe("level-set-mnist", "level_set", "mnist", batch_size=64, steps=6000, latent_dim=100,
           optimizer=OptimizerSpec("rmsprop", 5e-5), model_options={"n_gen": 5},
           steps_per_epoch=300, sample_every=4, **_WGAN_DCGAN,
           source=_LEVEL_SET_TEXT + "; the paper's MNIST run uses a DCGAN and Gaussian noise: "
           "z 100-d N(0, I), batch 64 (WGAN's), 6000 critic steps. " + _DCGAN_TEXT.replace("200 ->", "100 ->")
           + "; no BatchNorm in the critic."),
    Recipe("level-set-mnist-mlp", "level_set", "mnist", batch_size=64, steps=6000, latent_dim=100,
           optimizer=OptimizerSpec("rmsprop", 3e-4), model_options={"n_gen": 5},
           steps_per_epoch=300, sample_every=4, **_WGAN_MLP,
           source=_LEVEL_SET_TEXT + "; z 100-d N(0, I), batch 64, 6000 critic steps; RMSProp 3e-4, the "
           "rate of the gan-mnist-mlp recipe: with WGAN's 5e-5 these MLPs were still pixel noise after "
           "6000 steps (MMD^2 vs test 0.134; 3e-4: 0.082). " + _MLP_TEXT + "."),
    Recipe("wgan-gp-mnist", "wgan_gp", "mnist", batch_size=5 * 50, steps=4000, latent_dim=128,
           optimizer=OptimizerSpec("adam", 1e-4, beta_1=0.5, beta_2=0.9),
           model_options={"n_critic": 5, "gp_weight": 10.0}, steps_per_epoch=200, sample_every=5,
           **_WGAN_DCGAN,
           source=_WGAN_GP_TEXT + "; lambda 10, batch 50 and z 128-d N(0, I) as their MNIST script, "
           "4000 generator steps (their script: 200k); a dataset batch of 5 x 50. "
           + _DCGAN_TEXT.replace("200 ->", "128 ->") + "; no BatchNorm in the critic."),
    Recipe("wgan-gp-mnist-mlp", "wgan_gp", "mnist", batch_size=5 * 50, steps=4000, latent_dim=128,
           optimizer=OptimizerSpec("adam", 1e-4, beta_1=0.5, beta_2=0.9),
           model_options={"n_critic": 5, "gp_weight": 10.0}, steps_per_epoch=200, sample_every=5,
           **_WGAN_MLP,
           source=_WGAN_GP_TEXT + "; lambda 10, batch 50, z 128-d N(0, I), 4000 generator steps; "
           "a dataset batch of 5 x 50. " + _MLP_TEXT + "."),
    Recipe("mmd-gan-mnist", "mmd_gan", "mnist", batch_size=6 * 64, steps=4000, latent_dim=10,
           generator=NetworkSpec("dcgan_generator", (), output_activation="sigmoid"),
           critic=NetworkSpec("dcgan_critic", (), batch_norm=True), critic_dim=10,
           decoder=NetworkSpec("dcgan_generator", (), output_activation="sigmoid"),
           optimizer=OptimizerSpec("rmsprop", 5e-5), steps_per_epoch=200, sample_every=5,
           source=_MMD_GAN_TEXT + "; z and features 10-d (their MNIST setting), batch 64, 4000 "
           "generator steps; a dataset batch of 6 x 64. DCGAN G and decoder 10 -> 7x7x128 -> 14x14x64 "
           "-> 28x28x1 (BN, ReLU, sigmoid), encoder 28 -> 14x14x64 -> 7x7x128 (BN, LeakyReLU) -> 10."),
    Recipe("mmd-gan-mnist-mlp", "mmd_gan", "mnist", batch_size=6 * 64, steps=4000, latent_dim=10,
           generator=_GAN_MLP["generator"],
           critic=NetworkSpec("mlp", (512, 256), activation="leaky_relu"), critic_dim=10,
           decoder=NetworkSpec("mlp", (256, 512), activation="relu", output_activation="sigmoid"),
           optimizer=OptimizerSpec("rmsprop", 5e-5), steps_per_epoch=200, sample_every=5,
           source=_MMD_GAN_TEXT + "; z and features 10-d, batch 64, 4000 generator steps; a dataset "
           "batch of 6 x 64. G 10-256-512-1024-784 ReLU + BN, sigmoid; encoder 784-512-256-10 "
           "LeakyReLU; decoder 10-256-512-784 ReLU, sigmoid."),
]


RECIPES: dict[str, Recipe] = {r.name: r for r in [*_RING_EXTRA, *_MNIST_ADV,
    _sgn_mnist("sgn-mnist-uniform", "uniform", _U01, 1000, _U_TEXT),
    _sgn_mnist("sgn-mnist-gm", "binary_mixture", _GM32, 1000, _GM_TEXT),
    _sgn_mnist("sgn-mnist-uniform-n5000", "uniform", _U01, 5000, _U_TEXT),
    _sgn_mnist("sgn-mnist-gm-n5000", "binary_mixture", _GM32, 5000, _GM_TEXT),
    _sgn_mnist("sgn-mnist-uniform-n5000-candidates", "uniform", _U01, 5000, _U_TEXT,
               search="candidates", candidates=10, projection_dim=64, refresh_every=10),
    Recipe("sgn-digits", "sgn", "digits", batch_size=500, steps=3000, latent_dim=100,
           prior="uniform", prior_options=_U01,
           generator=NetworkSpec("mlp", (300,), activation="scaled_tanh", output_activation="sigmoid"),
           model_options={"pool_size": 1000, "k": 1}, optimizer=OptimizerSpec("sgd", 0.2),
           steps_per_epoch=100, sample_every=10,
           source="Demo-sized SGN on scikit-learn's 8x8 digits: the MNIST recipe's network "
                  "(100-300 5tanh, sigmoid), source, k and optimiser; N = 1000, B = 500."),
    _gan_mnist("gan-mnist", "gan", _GAN_DCGAN, _DCGAN_TEXT),
    # XLA for the reversal loop: the same codes (tests/ops/test_reversal.py), ~14% less time a
    # DCGAN iteration on CPU (bench/reversal_cost.py --arch dcgan --xla). The stopping test is
    # off (threshold = inf): with the paper's tau = gamma = 1e-4 it never tripped within 50
    # steps on MNIST (every iteration of kde-gan-mnist-mlp's 3 seeds; the first 600 iterations
    # of this recipe with the test on), so it changes no code, and dropping the reference
    # batch it needs halves the reversal's cost (~2.75 h -> ~1.4 h on the 2-core CPU).
    _gan_mnist("kde-gan-mnist", "kde_gan", _GAN_DCGAN, _DCGAN_TEXT + "; the stopping test off "
               "(threshold = inf, exactly 50 steps): with the paper's tau = gamma = 1e-4 it never "
               "tripped within 50 steps on MNIST (docs/kde_gan.md), so only the data batch is reversed",
               {**_REVERSAL, "threshold": float("inf"), "reversal_jit_compile": True}),
    _gan_mnist("gan-mnist-mlp", "gan", _GAN_MLP, _MLP_TEXT),
    _gan_mnist("kde-gan-mnist-mlp", "kde_gan", _GAN_MLP,
               _MLP_TEXT + "; 20 reversal steps at most, one of the paper's three timing settings: "
               "with tau = gamma = 1e-4 the test did not trip within 50 steps on MNIST (MMD_u^2 "
               "~1e-5 < tau), so the cap sets the cost, and 50 steps cost 2.5x the CPU time of 20",
               model_options={**_REVERSAL, "reversal_steps": 20}),
    Recipe("gram-ring8", "gram", "ring8", batch_size=200, steps=4000, latent_dim=20,
           critic_dim=10, model_options={"bandwidths": [1.0], "gram_dtype": "float32"},
           optimizer=_ADAM_HALF,
           sample_every=10, **_RING_NETS,
           source="GRAM App. A.1 and GRAM.jl Hyper.toml: ring of 8 (radius 2, std 0.2), "
                  "z~N(0,I) 20-d, G and f 100-100 ReLU, K=10, Adam 1e-3 beta1 0.5, sigma 1, "
                  "batch 200. The paper trains 2000 epochs; 4000 steps suffice on CPU (see card). "
                  "Float32 Gram matrices: 2-d features with sigma 1 are well conditioned, and "
                  "float32 makes the step ~20% cheaper (bench/step_cost.py)."),
    Recipe("mmd-net-ring8", "mmd_net", "ring8", batch_size=200, steps=4000, latent_dim=20,
           model_options={"bandwidths": [1.0]}, optimizer=OptimizerSpec("rmsprop", 1e-3),
           generator=NetworkSpec("mlp", (100, 100)), sample_every=10,
           source="GRAM App. A.1: MMD-net baseline, RMSprop 1e-3, sigma 1, batch 200."),
    Recipe("gram-mnist", "gram", "mnist", batch_size=200, steps=6000, latent_dim=100,
           prior="uniform", prior_options={"low": -1.0, "high": 1.0}, generator=_MNIST_G,
           critic=NetworkSpec("mnist_conv_critic"), critic_dim=100,
           model_options={"bandwidths": [0.1, 1.0, 10.0, 100.0]}, optimizer=_ADAM_HALF,
           steps_per_epoch=300, sample_every=2,
           source="GRAM App. A.3, Table 3: G MLP 100-600-600-800-784 ReLU+BN, sigmoid; "
                  "z~U[-1,1]^100; conv critic 16-32-32 -> 100; Adam 1e-3 beta1 0.5; batch 200; "
                  "sigma in {0.1, 1, 10, 100}; 20 epochs (6000 steps)."),
    Recipe("gram-mnist-clip", "gram", "mnist", batch_size=200, steps=6000, latent_dim=100,
           prior="uniform", prior_options={"low": -1.0, "high": 1.0}, generator=_MNIST_G,
           critic=NetworkSpec("mnist_conv_critic"), critic_dim=100,
           model_options={"bandwidths": [0.1, 1.0, 10.0, 100.0], "clip_ratio": True},
           optimizer=_ADAM_HALF, steps_per_epoch=300, sample_every=2,
           source="gram-mnist with JuliaGRAM's isclip_ratio (r clamped to [0, 1e9], no "
                  "positivity term): with eq. 9's lam*sum(r) the critic objective ran away "
                  "after ~12 epochs in our gram-mnist run (docs/mnist_mmd.md)."),
    Recipe("mmd-net-mnist", "mmd_net", "mnist", batch_size=200, steps=6000, latent_dim=100,
           prior="uniform", prior_options={"low": -1.0, "high": 1.0}, generator=_MNIST_G,
           model_options={"bandwidths": [1.0, 5.0, 10.0]}, optimizer=OptimizerSpec("rmsprop", 1e-3),
           steps_per_epoch=300, sample_every=2,
           source="GRAM.jl Hyper.toml MMD-net baseline on MNIST: RMSprop 1e-3, sigma {1, 5, 10}; "
                  "same generator and length as gram-mnist."),
    Recipe("gram-digits", "gram", "digits", batch_size=100, steps=6000, latent_dim=16,
           prior="uniform", prior_options={"low": -1.0, "high": 1.0},
           generator=NetworkSpec("mlp", (128, 128), output_activation="sigmoid"),
           critic=NetworkSpec("mlp", (128, 128)), critic_dim=16,
           model_options={"bandwidths": [0.1, 1.0, 10.0], "clip_ratio": True, "gram_dtype": "float32"},
           optimizer=_ADAM_HALF,
           steps_per_epoch=100, sample_every=10,
           source="Demo-sized GRAM on scikit-learn's 8x8 digits (no download): MLP G and f, "
                  "the MNIST recipe's optimiser and kernel family, clip_ratio (JuliaGRAM's "
                  "isclip_ratio): with eq. 9's lam*sum(r) the critic objective ran away on this "
                  "1500-image set (MMD^2 vs test 0.26 after 3000 steps; 0.007 clipped, 6000 steps)."),
    Recipe("mmd-net-digits", "mmd_net", "digits", batch_size=100, steps=3000, latent_dim=16,
           prior="uniform", prior_options={"low": -1.0, "high": 1.0},
           generator=NetworkSpec("mlp", (128, 128), output_activation="sigmoid"),
           model_options={"bandwidths": [1.0, 2.0, 5.0]}, optimizer=OptimizerSpec("rmsprop", 1e-3),
           steps_per_epoch=100, sample_every=10,
           source="Demo-sized MMD-net on scikit-learn's 8x8 digits."),
    # IML paper §4.1 and its code (METHODS.md §5): invertible perceptron K -> 600 -> 784
    # ("code" activation constants), Adam 1e-2, batch 3000, 250 epochs of 60k images;
    # GMM of 30 full-covariance components (k-means init, 20 restarts, 200 iterations)
    # on the codes of the first 3000 (shuffled) training images.
    Recipe("iml-mnist", "iml", "mnist", batch_size=3000, steps=250 * 20, latent_dim=20,
           prior="gmm", prior_options=_IML_GMM,
           generator=NetworkSpec("invertible_perceptron", (600,), preset="code"),
           model_options={"prior_fit_size": 3000}, optimizer=OptimizerSpec("adam", 1e-2, plateau=(0.8, 100)),
           steps_per_epoch=20, sample_every=50,
           source="IML §4.1 + reference code (NF_changedim, test_mnist_all.py): K=20, Adam 1e-2 (the "
                  "2018-08 code; 1e-3 in 2018-03 reached MSE 0.153 after 400 steps vs 0.099 after 100 at "
                  "1e-2), batch 3000, 250 epochs, W ~ N(0,1); GMM(30, full, n_init=20, max_iter=200) on "
                  "the first 3000 codes; the code's ReduceLROnPlateau(0.8, patience 100 epochs) on the "
                  "training loss (an epoch = 20 steps = one pass, as there)."),
    Recipe("vae-mnist", "vae", "mnist", batch_size=100, steps=50 * 600, latent_dim=20,
           generator=NetworkSpec("mlp", (600,), activation="tanh", output_activation="sigmoid"),
           encoder=NetworkSpec("mlp", (600,), activation="tanh"),
           optimizer=OptimizerSpec("adam", 1e-3), steps_per_epoch=600, sample_every=10,
           source="IML §4.1 VAE baseline: decoder K -> 600 (tanh) -> 784 (sigmoid), mirrored encoder "
                  "784 -> 600 -> 2K, Bernoulli likelihood, Adam (rate and length unstated: 1e-3, "
                  "50 epochs of batch 100)."),
    # IML §4.2: 100 ms chunks (800 samples at 8 kHz), 50% overlap, Hann window; a 3-layer
    # 1-D conv autoencoder with 200-sample filters, K = 80; an HMM with 300 states on the
    # chunk-code sequences of the training recordings.
    Recipe("iml-fsdd", "iml", "fsdd", batch_size=256, steps=100 * 108, latent_dim=80,
           prior="hmm", prior_options={"n_states": 300},
           generator=NetworkSpec("audio_conv_decoder", ()), encoder=NetworkSpec("audio_conv_encoder", ()),
           model_options={"prior_fit_size": 0,
                          "prior_fit_options": {"max_iter": 100, "tol": 1e-4, "reg": 1e-3}},
           optimizer=OptimizerSpec("adam", 1e-3), steps_per_epoch=108, sample_every=100,
           source="IML §4.2: FSDD at 8 kHz, 800-sample Hann chunks with 50% overlap, conv AE with "
                  "200-sample filters, K=80, HMM with 300 states (the paper; the code ran 370) and a "
                  "variance floor 1e-3 (the code's min_covar). Optimiser and length unstated: Adam 1e-3, "
                  "100 epochs of the 27,701 training chunks (after 20 the AE reconstructed worse than "
                  "PCA of its size: 6.7 against 7.9 dB)."),
    Recipe("iml-digits", "iml", "digits", batch_size=500, steps=2000, latent_dim=8,
           prior="gmm", prior_options={"n_components": 10, "n_init": 5, "max_iter": 200, "init": "kmeans"},
           generator=NetworkSpec("invertible_perceptron", (48,), preset="code"),
           model_options={"prior_fit_size": 0}, optimizer=OptimizerSpec("adam", 1e-2),
           steps_per_epoch=100, sample_every=10,
           source="Demo-sized IML on scikit-learn's 8x8 digits: invertible perceptron 8 -> 48 -> 64, "
                  "GMM of 10 full-covariance components on all 1500 training codes."),
]}


def names() -> list[str]:
    return sorted(RECIPES)


def get(name: str) -> Recipe:
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        hint = difflib.get_close_matches(name, RECIPES, n=1)
        raise ValueError(f"unknown recipe {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                         + f" (known: {', '.join(names())})")
    return RECIPES[name]
