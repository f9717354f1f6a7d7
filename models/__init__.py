"""The zoo's methods: one file each, all ``GenerativeModel`` subclasses."""

from tfgen.models import networks
from tfgen.models.base import GenerativeModel
from tfgen.models.gan import GAN
from tfgen.models.gram import GRAM
from tfgen.models.iml import IML
from tfgen.models.kde_gan import KDEGAN
from tfgen.models.learned_prior import LearnedPrior, with_learned_prior
from tfgen.models.level_set_gan import LevelSetGAN
from tfgen.models.mmd_gan import MMDGAN
from tfgen.models.mmd_net import MMDNet
from tfgen.models.sgn import SGN
from tfgen.models.vae import VAE
from tfgen.models.wgan_gp import WGANGP

__all__ = ["GAN", "GRAM", "IML", "KDEGAN", "GenerativeModel", "LearnedPrior", "LevelSetGAN", "MMDGAN", "MMDNet", "SGN", "VAE", "WGANGP",
           "networks", "with_learned_prior"]
