"""Test-session set-up shared by every test.

Two logical CPU devices are configured before TensorFlow initialises, so
the harness can run ``MirroredStrategy`` over 2 replicas on one CPU.
"""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
except RuntimeError:  # already initialised by an earlier import: the 2-replica test will skip
    pass

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data_dir(monkeypatch):
    """``TFGEN_DATA_DIR`` pointed at ``../shared/data`` (skips when it is absent)."""
    path = os.environ.get("TFGEN_DATA_DIR") or str(SHARED_DATA)
    if not (pathlib.Path(path) / "mnist").is_dir():
        pytest.skip(f"no MNIST files under {path}")
    monkeypatch.setenv("TFGEN_DATA_DIR", path)
    return path


@pytest.fixture
def offline_empty_data_dir(monkeypatch, tmp_path):
    """``$TFGEN_DATA_DIR`` pointing at an empty folder and TFDS unable to download:
    the situation in which a loader must name both ways to provide the data."""
    import tensorflow_datasets as tfds

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("TFGEN_DATA_DIR", str(empty))

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds, "load", offline)
    return empty
