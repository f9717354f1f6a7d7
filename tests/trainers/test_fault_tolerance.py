"""Fault tolerance: a killed run resumes exactly, a diverged run stops cleanly
and keeps what was good, and an interrupted write leaves the old files.

The weights of a resumed run are compared with ``atol=1e-6``, as in the
method harness' resume check; on CPU they agree bit for bit (difference 0.0).
"""

import hashlib
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import tfgen
from tfgen import cli
from tfgen.trainers import CheckpointEveryEpoch, Trainer, recipes
from tfgen.trainers.callbacks import TrainingDiverged
from tfgen.trainers.checkpoint import checkpoint_for
from tfgen.trainers.recipes import NetworkSpec, OptimizerSpec

RESUME_ATOL = 1e-6


def _latest_step(run_dir):
    """The step of the checkpoint the ``checkpoint`` state file names (None before the first)."""
    try:
        text = (run_dir / "checkpoints" / "checkpoint").read_text()
    except FileNotFoundError:
        return None
    m = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', text, re.M)
    return int(m.group(1)) if m else None


def _max_diff(a, b):
    """Largest difference over the weights and the optimizer state of two models."""
    pairs = list(zip(a.get_weights(), b.get_weights()))
    pairs += [(np.asarray(u), np.asarray(v)) for u, v in zip(a.optimizer.variables, b.optimizer.variables)]
    assert len(pairs) > 2
    return max(float(np.max(np.abs(u - v))) if np.size(u) else 0.0 for u, v in pairs)


# SGN's resume path is the same Trainer/CheckpointManager code; its run costs
# another ~20 s on a loaded 2-core machine, so it is marked slow.
@pytest.mark.parametrize("recipe", ["gram-ring8", pytest.param("sgn-ring8", marks=pytest.mark.slow)])
def test_sigkill_then_same_command_ends_with_uninterrupted_weights(recipe, tmp_path, capsys):
    """``tfgen train`` killed with SIGKILL after its first checkpoint, then run
    again with the same command, resumes from that checkpoint and ends with the
    weights (and optimizer state) of an uninterrupted run."""
    steps = 200  # 2 epochs of the recipes' 100 steps: checkpoints at 100 and 200
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "tfgen.cli", "train", recipe, "--steps", str(steps), "--out", str(run_dir)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while _latest_step(run_dir) is None:
                assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint within 300 s"
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = _latest_step(run_dir)
    # the kill landed after the first checkpoint and before the run finished (the
    # second epoch takes a second or more; this polls every 20 ms)
    assert killed_at == 100, killed_at
    assert not (run_dir / "model.keras").exists() and not (run_dir / "saved_model").exists()

    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert f"resuming from step {killed_at}" in again.stdout

    straight_dir = tmp_path / "straight"  # the same command, uninterrupted (in this process)
    assert cli.main(["train", recipe, "--steps", str(steps), "--out", str(straight_dir)]) == 0, \
        capsys.readouterr().err
    resumed = tfgen.load(run_dir, format="keras")
    straight = tfgen.load(straight_dir, format="keras")
    assert int(resumed.train_steps) == int(straight.train_steps) == steps
    diff = _max_diff(straight, resumed)
    assert diff <= RESUME_ATOL, f"resumed run differs from the uninterrupted one by {diff}"
    rows = (run_dir / "log.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch") and [r.split(",")[0] for r in rows[1:]] == ["0", "1"]


def _small(steps, **changes):
    """MMD-net on 2-D data, tiny: 10 steps an epoch, a second or two a run."""
    return recipes.get("mmd-net-ring8").replace(
        name="mmd-net-small", generator=NetworkSpec("mlp", (16,)), latent_dim=4, batch_size=50,
        steps_per_epoch=10, steps=steps, **changes)


def test_kill_between_an_epochs_log_row_and_its_checkpoint_leaves_one_row_per_epoch(tmp_path):
    """The window the SIGKILL test can hit by chance, made deterministic: epoch
    1's row is in log.csv but its checkpoint never got written (removed here).
    The same run again resumes from epoch 0's checkpoint and the log ends with
    one row per epoch, epoch 1's from the resumed run."""
    run_dir = tmp_path / "run"
    _trainer(_small(20), run_dir).run()
    rows = (run_dir / "log.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"]
    ckpt = run_dir / "checkpoints"
    for f in ckpt.glob("ckpt-20*"):
        f.unlink()
    (ckpt / "checkpoint").write_text('model_checkpoint_path: "ckpt-10"\nall_model_checkpoint_paths: "ckpt-10"\n')
    (run_dir / "log.csv").write_text("\n".join(rows + [rows[-1].replace("1,", "7,", 1)]) + "\n")  # a stale row
    trainer = _trainer(_small(20), run_dir)
    trainer.run()
    again = (run_dir / "log.csv").read_text().strip().splitlines()
    assert again[0] == rows[0] and again[1] == rows[1]  # epoch 0's row is kept, byte for byte
    assert [r.split(",")[0] for r in again[1:]] == ["0", "1"], again
    assert int(trainer.model.train_steps) == 20


def _trainer(recipe, run_dir, **kw):
    return Trainer(recipe, run_dir, verbose=0, evaluate_at_end=False, sample_pictures=False, **kw)


def _data_with_outlier(at_batch, n=2000):
    """Data whose batch ``at_batch`` (0-based, in the run's seeded order) holds a
    point at 3e38: finite, so it passes validation, but its square overflows
    float32, so the MMD of that batch, and the loss, is NaN."""
    x = np.random.default_rng(0).normal(size=(n, 2)).astype("float32")
    probe = _trainer(_small(10), "unused", data=x)
    probe.build_model()  # it sets TF's global seed, which the data order depends on, as in run()
    batches = list(probe.dataset().take(at_batch + 1))
    row = int(np.flatnonzero((x == batches[at_batch].numpy()[0]).all(1))[0])
    assert not any((x[row] == np.asarray(b)).all(1).any() for b in batches[:at_batch])
    x[row] = 3e38
    return x


def _snapshot(run_dir):
    """Hashes of the files a finished run wrote (its model, export and metrics)."""
    files = [run_dir / "model.keras", run_dir / "metrics.json",
             *sorted(p for p in (run_dir / "saved_model").rglob("*") if p.is_file())]
    assert len(files) > 4
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_nan_loss_stops_at_its_step_keeps_last_good_checkpoint_and_writes_nothing(tmp_path):
    """A run that is extended from 10 to 40 steps meets a NaN loss at step 24
    (epoch 3): it stops there with a message naming the step, the loss and the
    checkpoint kept (step 20, written before the NaN, with finite weights);
    no checkpoint is written after it, and the model.keras, export and
    metrics.json of the earlier, good run are left as they were."""
    x = _data_with_outlier(at_batch=23)
    run_dir = tmp_path / "run"
    _trainer(_small(10), run_dir, data=x).run()
    before = _snapshot(run_dir)

    trainer = _trainer(_small(40), run_dir, data=x)
    with pytest.raises(TrainingDiverged) as caught:
        trainer.run()
    message = str(caught.value)
    assert isinstance(caught.value, FloatingPointError)
    assert re.search(r"\bloss = nan\b.* at epoch 3 \(step 24\)", message), message
    assert "ckpt-20" in message and "\n" not in message
    assert int(trainer.model.train_steps) == 24  # stopped at that step, not at the epoch's end

    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    assert latest.endswith("ckpt-20")
    assert not list((run_dir / "checkpoints").glob("ckpt-30*")) and not list((run_dir / "checkpoints").glob("ckpt-40*"))
    reader = tf.train.load_checkpoint(latest)
    checked = 0
    for name, dtype in reader.get_variable_to_dtype_map().items():
        if dtype.is_floating:
            assert np.all(np.isfinite(reader.get_tensor(name))), name
            checked += 1
    assert checked >= 4
    assert _snapshot(run_dir) == before
    # finish() refuses too, and still writes nothing
    with pytest.raises(TrainingDiverged, match="not saving model.keras"):
        trainer.finish()
    assert _snapshot(run_dir) == before
    # the epoch log stops at the last completed epoch and is closed (readable, whole rows)
    rows = (run_dir / "log.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"]


def test_non_finite_weights_are_never_checkpointed_or_saved(tmp_path):
    """A step can apply a NaN gradient while its own loss was finite (the last
    step of a run, say): the epoch-end checkpoint and finish() check the
    weights themselves and refuse to write them."""
    trainer = _trainer(_small(10), tmp_path / "run")
    model = trainer.build_model()
    weight = model.generator.trainable_weights[0]
    weight.assign(np.where(np.arange(weight.shape[-1]) == 1, np.nan, np.asarray(weight)))
    manager = tf.train.CheckpointManager(checkpoint_for(model), str(tmp_path / "ckpt"), max_to_keep=2)
    callback = CheckpointEveryEpoch(manager)
    callback.set_model(model)
    with pytest.raises(TrainingDiverged, match=r"weights are not finite after step 0 .*no checkpoint"):
        callback.on_epoch_end(0)
    assert manager.latest_checkpoint is None
    os.makedirs(trainer.out_dir)
    with pytest.raises(TrainingDiverged, match=r"not finite at step 0 \(.*generator.*\); not saving"):
        trainer.finish()
    assert os.listdir(trainer.out_dir) == []


def test_cli_reports_divergence_in_one_line(tmp_path, capsys, monkeypatch):
    """``tfgen train`` on a recipe that diverges at once (SGD at 1e30): exit code
    2, one line naming the step and the losses, and nothing written but logs."""
    diverging = recipes.get("gram-ring8").replace(name="gram-ring8-diverging", steps=20, steps_per_epoch=10,
                                                  optimizer=OptimizerSpec("sgd", 1e30))
    monkeypatch.setitem(recipes.RECIPES, diverging.name, diverging)
    run_dir = tmp_path / "run"
    code = cli.main(["train", diverging.name, "--out", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.search(r"^tfgen train: error: training diverged: mmd = nan.* at epoch 1 \(step 2\); "
                     r"no checkpoint had been written yet", lines[0]), lines[0]
    assert tf.train.latest_checkpoint(str(run_dir / "checkpoints")) is None
    for name in ("model.keras", "saved_model", "metrics.json"):
        assert not (run_dir / name).exists(), name


def test_interrupted_writes_leave_the_old_files(tmp_path, monkeypatch):
    """An export that fails half-way through a resumed run's finish() leaves the
    earlier model.keras and export in place (a matching pair) and no
    temporary files; the next run writes both. A zoo publish that fails
    half-way leaves the old entry as it was. (An interrupted plain export:
    tests/test_export.py::test_overwrite_is_atomic.)"""
    run_dir = tmp_path / "run"
    _trainer(_small(10), run_dir).run()
    before = _snapshot(run_dir)

    def broken_write(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken_write)
    with pytest.raises(OSError, match="disk full"):
        _trainer(_small(20), run_dir).run()
    monkeypatch.undo()
    assert _snapshot(run_dir) == before
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".") or "tmp" in p.name]
    # The next run resumes at step 20 with no step left to train: it still
    # writes both, with the optimizer state (step counter) in model.keras.
    model = _trainer(_small(20), run_dir).run()
    assert int(tfgen.load(run_dir, format="keras").train_steps) == 20
    np.testing.assert_allclose(tfgen.load(run_dir / "saved_model").sample(8, seed=1), model.sample(8, seed=1),
                               atol=1e-5)

    monkeypatch.setenv("TFGEN_ZOO_DIR", str(tmp_path / "zoo"))
    entry = tfgen.zoo.publish(run_dir, "small")
    published = {str(p.relative_to(entry)): p.read_bytes() for p in entry.rglob("*") if p.is_file()}

    def broken_copy(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tfgen.zoo, "_copy_weights_only", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        tfgen.zoo.publish(run_dir, "small", overwrite=True)
    assert {str(p.relative_to(entry)): p.read_bytes() for p in entry.rglob("*") if p.is_file()} == published
    assert [p.name for p in (tmp_path / "zoo").iterdir()] == ["small"]  # no temporary folder left


def test_resume_from_a_shorter_run_ends_at_the_requested_step(tmp_path):
    """A run of 5 steps (its only epoch cut to 5) extended to 30 steps ends at
    step 30 with the weights of an uninterrupted 30-step run: the cut epoch is
    finished first, so later checkpoints fall on the usual epoch boundaries."""
    straight = _trainer(_small(30), tmp_path / "straight").run()
    run_dir = tmp_path / "resumed"
    _trainer(_small(5), run_dir).run()
    assert _latest_step(run_dir) == 5
    resumed = _trainer(_small(30), run_dir).run()
    assert int(resumed.train_steps) == 30
    assert _max_diff(straight, resumed) <= RESUME_ATOL
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.index")) == ["ckpt-20.index", "ckpt-30.index"]


def test_train_seconds_of_a_resumed_run_cover_all_its_processes(tmp_path, monkeypatch):
    """The training clock is in the checkpoints: a run resumed at step 20 reports the
    time of its first process (as of that checkpoint) plus its own, not its own only.
    A checkpoint from before the clock resumes too, and the summary says from which
    step its time counts, through later resumes as well."""
    run_dir = tmp_path / "run"
    first = _trainer(_small(20), run_dir)
    first.run()
    ckpt = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    before = tf.train.load_variable(ckpt, "clock/seconds/.ATTRIBUTES/VARIABLE_VALUE")
    # the unrounded figure: the summary rounds to 0.1 s, which would make this flaky
    assert 0 < before <= first.train_seconds + 1e-6
    second = _trainer(_small(40), run_dir)
    t0 = time.time()
    second.run()
    wall = time.time() - t0
    assert second.clock._base == pytest.approx(before)
    assert before < second.train_seconds <= before + wall
    assert second.summary["train_seconds"] == round(second.train_seconds, 1)
    assert "train_seconds_from_step" not in second.summary

    # a checkpoint written without the clock (as before it existed)
    old_dir = tmp_path / "old"
    monkeypatch.setattr(Trainer, "_run_state", lambda self: {})
    _trainer(_small(20), old_dir).run()
    monkeypatch.undo()
    resumed = _trainer(_small(40), old_dir)
    resumed.run()
    assert int(resumed.model.train_steps) == 40
    assert resumed.summary["train_seconds_from_step"] == 20
    # and a later resume, from a checkpoint that has the clock, still knows it
    again = _trainer(_small(60), old_dir)
    again.run()
    assert again.summary["train_seconds_from_step"] == 20
    assert again.summary["train_seconds"] >= resumed.summary["train_seconds"] - 1.0
