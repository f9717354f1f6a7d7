"""Pictures: the latent-interpolation codes and grids."""

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
