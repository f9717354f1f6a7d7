"""Multi-worker ``tf.distribute``: 2 worker processes on this machine, on CPU.

Two processes with ``TF_CONFIG`` on loopback ports train a tiny GRAM and a
tiny SGN for a few steps with ``model.fit`` under
``MultiWorkerMirroredStrategy`` (one replica each, local batch B/2), and a
third process trains the same models on one device at global batch B. The
weight updates agree as in the harness's 2-replica check (``UPDATE_RTOL``
of the update's norm). Then the two workers run a ``Trainer`` into one
shared run directory: the chief alone writes the outputs, and the other
worker's temporary directory is gone afterwards.

Data order: Keras's ``fit`` under any strategy takes one batch from a fresh
iterator of the dataset before training (``_maybe_symbolic_build``). A
repeated, shuffled pipeline orders each pass by ``(seed, pass)`` only
(``tfgen.data.pipeline.pass_order``), so that peek does not change the
batches the training iterator yields, and the workers are fed the Trainer's
own shuffled pipeline.
"""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np

from harness import UPDATE_RTOL

GLOBAL_BATCH, STEPS = 32, 3
TIMEOUT_S = 240

WORKER = r'''
import json, os, sys
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import keras
import tfgen.data
from tfgen.distributions import Gaussian, Uniform
from tfgen.models import GRAM, SGN, networks
from tfgen.trainers import Trainer, recipes
from tfgen.trainers.recipes import NetworkSpec
from tfgen.trainers.trainer import is_chief, make_strategy, shard_by_data

out, strategy_name, batch, steps, run_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
strategy = make_strategy(strategy_name)
rng = np.random.default_rng(0)
k = rng.integers(0, 8, 256) * np.pi / 4
x = (2 * np.stack([np.cos(k), np.sin(k)], 1) + 0.2 * rng.normal(size=(256, 2))).astype("float32")

def gram():
    keras.utils.set_random_seed(3)
    m = GRAM(networks.mlp(4, [32, 32], 2, name="generator"), networks.mlp(2, [32, 32], 5, name="critic"),
             Gaussian(4))
    m.compile(keras.optimizers.SGD(0.01), keras.optimizers.SGD(0.01))
    return m

def sgn():
    keras.utils.set_random_seed(4)
    m = SGN(networks.mlp(4, [32], 2, activation="scaled_tanh", name="generator"), Uniform(4), pool_size=64)
    m.compile(keras.optimizers.SGD(0.05))
    return m

for name, make in (("gram", gram), ("sgn", sgn)):
    with strategy.scope():
        model = make()
    start = [np.array(w) for w in model.get_weights()]
    # the Trainer's pipeline: shuffled, repeated, sharded by data
    ds = shard_by_data(tfgen.data.from_array(x, batch, seed=5, repeat=True))
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    np.savez(os.path.join(out, name + ".npz"), *start, *[np.array(w) for w in model.get_weights()])

if run_dir != "-":
    base = recipes.get("mmd-net-ring8")
    recipe = base.replace(generator=NetworkSpec("mlp", (16,)), latent_dim=4, batch_size=batch,
                          steps_per_epoch=2, steps=4)
    Trainer(recipe, run_dir, strategy=strategy, verbose=0, evaluate_at_end=False,
            sample_pictures=False).run()
    with open(os.path.join(out, "role.json"), "w") as f:
        json.dump({"chief": is_chief(strategy)}, f)
'''


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _weights(path):
    with np.load(path) as f:
        arrays = [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]
    n = len(arrays) // 2
    return arrays[:n], arrays[n:]


def test_two_workers_equal_one_device_and_only_the_chief_writes(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    run_dir = tmp_path / "run"
    base_env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    procs, logs = [], []
    jobs = [(f"w{i}", "multi-worker", str(run_dir),
             {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
              "TMPDIR": str(tmp_path / f"tmp{i}")}) for i in range(2)]
    jobs.append(("single", "default", "-", {}))
    t0 = time.time()
    try:
        for name, strategy, run, env in jobs:
            (tmp_path / name).mkdir()
            if "TMPDIR" in env:
                os.makedirs(env["TMPDIR"])
            log = open(tmp_path / name / "log", "w")
            logs.append(log)
            procs.append(subprocess.Popen(
                [sys.executable, str(script), str(tmp_path / name), strategy, str(GLOBAL_BATCH), str(STEPS), run],
                env={**base_env, **env}, stdout=log, stderr=subprocess.STDOUT))
        for (name, *_), p in zip(jobs, procs):
            rc = p.wait(timeout=max(1.0, TIMEOUT_S - (time.time() - t0)))
            assert rc == 0, f"{name} exited with {rc}:\n" + (tmp_path / name / "log").read_text()[-4000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()

    for model in ("gram", "sgn"):
        start, single = _weights(tmp_path / "single" / f"{model}.npz")
        start0, worker0 = _weights(tmp_path / "w0" / f"{model}.npz")
        _, worker1 = _weights(tmp_path / "w1" / f"{model}.npz")
        for a, b in zip(start, start0):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(worker0, worker1):  # the workers hold one model
            np.testing.assert_array_equal(a, b)
        update_1 = np.concatenate([(w - s).ravel() for s, w in zip(start, single)])
        update_2 = np.concatenate([(w - s).ravel() for s, w in zip(start, worker0)])
        err = np.linalg.norm(update_2 - update_1)
        print(f"{model}: |update(2 workers) - update(1 device)| / |update| = "
              f"{err / np.linalg.norm(update_1):.2e}")
        assert err <= UPDATE_RTOL * np.linalg.norm(update_1) + 1e-7, (
            f"{model}: {STEPS} steps on 2 workers differ from 1 device: |diff| = {err:.3g}, "
            f"|update| = {np.linalg.norm(update_1):.3g}")

    # The Trainer: worker 0 is the chief and wrote the outputs; worker 1's went to a
    # temporary directory that is gone.
    roles = [json.loads((tmp_path / f"w{i}" / "role.json").read_text())["chief"] for i in range(2)]
    assert roles == [True, False]
    for name in ("model.keras", "metrics.json", "recipe.json", "saved_model", "log.csv"):
        assert (run_dir / name).exists(), name
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["steps"] == 4
    assert any(n.startswith("ckpt-4") for n in os.listdir(run_dir / "checkpoints"))
    assert os.listdir(tmp_path / "tmp1") == [], os.listdir(tmp_path / "tmp1")
