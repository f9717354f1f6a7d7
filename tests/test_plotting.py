"""Pictures: the latent-interpolation codes and grids."""

import os

import numpy as np
import pytest

from tfgen import plotting
from tfgen.distributions import Uniform


def test_interpolation_codes_lie_on_segments():
    prior = Uniform(3, 0.0, 1.0)
    z = plotting.interpolation_codes(prior, rows=2, steps=5, seed=4).numpy().reshape(2, 5, 3)
    z0, z1 = prior.sample(2, seed=4).numpy(), prior.sample(2, seed=5).numpy()
    np.testing.assert_allclose(z[:, 0], z0, atol=1e-6)
    np.testing.assert_allclose(z[:, -1], z1, atol=1e-6)
    np.testing.assert_allclose(z[:, 2], (z0 + z1) / 2, atol=1e-6)
    # equal steps along each row
    np.testing.assert_allclose(np.diff(z, axis=1), np.broadcast_to((z1 - z0)[:, None] / 4, (2, 4, 3)), atol=1e-6)


def test_interpolation_argument_errors():
    with pytest.raises(ValueError, match="steps >= 2"):
        plotting.interpolation_codes(Uniform(3), rows=2, steps=1)


def test_image_grid_shape_checked(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        plotting.image_grid(np.zeros((4, 8, 8)), str(tmp_path / "x.png"))


def test_manifold_traversal_reverses_the_ends(tmp_path):
    """Images the generator can make are reversed to near-exact codes, so the
    rows start and end at (reconstructions of) the given images."""
    import keras

    from tfgen.distributions import Gaussian
    from tfgen.models import MMDNet, networks

    keras.utils.set_random_seed(0)
    g = networks.mlp(3, (16,), (4, 4, 1), activation="tanh", output_activation="sigmoid")
    model = MMDNet(g, Gaussian(3))
    targets = np.asarray(model.generate(model.prior.sample(4, seed=1)))
    out = plotting.manifold_traversal(model, targets[:2], targets[2:], str(tmp_path / "t.png"), steps=5,
                                      reversal_steps=800, reversal_lr=50.0)
    assert out["reconstruction_mse"] < 1e-4
    assert (tmp_path / "t.png").stat().st_size > 0
    with pytest.raises(ValueError, match="one shape"):
        plotting.manifold_traversal(model, targets[:2], targets[:1], str(tmp_path / "u.png"))


def test_latent_grid_codes_and_figure(tmp_path):
    from tfgen.distributions import Gaussian, Uniform
    from tfgen.models import GAN, networks

    z = plotting.latent_grid_codes(Uniform(2, low=-1.0, high=1.0), n=5)
    assert z.shape == (25, 2)
    np.testing.assert_allclose(z[0], [-1, -1])
    np.testing.assert_allclose(z[-1], [1, 1])
    np.testing.assert_allclose(z[1], [-1, -0.5])  # row-major: the second coordinate moves first
    np.testing.assert_allclose(plotting.latent_grid_codes(Gaussian(2), n=3)[:, 0], [-2] * 3 + [0] * 3 + [2] * 3)
    with pytest.raises(ValueError, match="2-D latent"):
        plotting.latent_grid_codes(Gaussian(3))
    g = networks.mlp(2, (8,), 2)
    model = GAN(g, networks.mlp(2, (8,), 1), Uniform(2))
    path = plotting.latent_grid(model, str(tmp_path / "grid.png"), n=7, data=np.zeros((10, 2)))
    assert os.path.getsize(path) > 1000
    image_model = GAN(networks.mlp(2, (8,), (4, 4, 1)), networks.mlp((4, 4, 1), (8,), 1), Uniform(2))
    with pytest.raises(ValueError, match="2-D data"):
        plotting.latent_grid(image_model, str(tmp_path / "bad.png"))
