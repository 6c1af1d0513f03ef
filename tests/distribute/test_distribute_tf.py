"""Training under tf.distribute: MirroredStrategy over 2 logical CPUs, and two
MultiWorkerMirroredStrategy workers on 127.0.0.1 killed and resumed.

Each case runs in processes of its own (logical devices and TF_CONFIG must be
set before TensorFlow starts), with timeouts; TensorFlow backend only. The
MirroredStrategy measurements of the blocks are a part of the process that
conftest.py's `mirrored_parts` starts; the workers' uninterrupted run is
killed-and-resumed's reference and evaluate-only's trained run.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import ROOT
from tests.distribute.processes import free_ports

# Processes of their own, each tens of seconds.
pytestmark = [
    pytest.mark.backends("tensorflow", reason="tf.distribute is TensorFlow's"),
    pytest.mark.slow,
]

TIMEOUT = 600  # seconds for a run, generous for a loaded machine


def _env(tmp_path, **extra):
    scratch = tmp_path / "tmp"  # the children's temporary directories
    scratch.mkdir(exist_ok=True)
    return {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TMPDIR": str(scratch),
        "PYTHONPATH": str(ROOT),
        **extra,
    }


@pytest.fixture(scope="module")
def mirrored(mirrored_parts):
    """The blocks' part of distribute_child_tf.py (see conftest.py)."""
    return json.loads((mirrored_parts("blocks") / "results.json").read_text())


def test_synchronized_bn_equals_one_device(mirrored):
    # 2 replicas of 4 images against one device on the same 8 images, 3 SGD
    # steps: synchronized statistics are the global batch's.
    assert mirrored["replicas"] == 2
    assert mirrored["sync"]["weights_vs_single"] < 1e-5
    assert mirrored["sync"]["statistics_across_replicas"] == 0.0


def test_unsynchronized_bn_differs_per_replica(mirrored):
    # Each replica normalizes its own 4 images and keeps its own moving
    # statistics: they drift apart, and training follows other statistics.
    assert mirrored["unsync"]["statistics_across_replicas"] > 1e-3
    assert mirrored["unsync"]["trainable_vs_single"] > 1e-4


def test_synchronize_batch_statistics_averages_the_replicas(mirrored):
    # Every copy becomes the mean of the copies, in the model's 7 BN layers
    # (the unit's 1, the residual block's 2, the bottleneck block's 4).
    assert mirrored["synchronized_layers"] == 7
    assert mirrored["averaged"] < 1e-6


def test_drop_path_masks_differ_across_replicas(mirrored):
    assert mirrored["drop_path_same_masks"] is False


def test_checkpoints_move_between_replica_counts(mirrored):
    assert mirrored["two_to_one"] == 0.0
    assert mirrored["one_to_two"] == 0.0
    # Unsynchronized statistics: the checkpoint holds the values get_weights()
    # reads (the first replica's).
    assert mirrored["two_to_one_unsync"] == 0.0


# Two MultiWorkerMirroredStrategy workers, through the training command, with
# synchronized batch normalization. The digits at their own 8x8 (the default
# resizes them to 16x16): a quarter of the arithmetic; the claims are the same
# at any size.
ARGS = ["--epochs", "2", "--batch-size", "256", "--seed", "3", "--image-size", "8"]
ARGS += ["--sync-bn"]
STEPS_PER_EPOCH = 6  # 1293 digits / 256
COMMAND = [sys.executable, "-m", "examples.train"]


def _start_workers(tmp_path, logdir, extra=()):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        log = open(tmp_path / f"worker{index}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
        command = [
            *COMMAND,
            "--distribute",
            "multi_worker",
            "--logdir",
            str(logdir),
            *ARGS,
            *extra,
        ]
        env = _env(tmp_path, TF_CONFIG=json.dumps(config))
        workers.append(
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        )
        log.close()
    return workers


def _wait(workers, tmp_path):
    try:
        codes = [w.wait(timeout=TIMEOUT) for w in workers]
    finally:
        for w in workers:
            w.kill()
    logs = "\n".join(
        p.read_text()[-2000:] for p in sorted(tmp_path.glob("worker*.log"))
    )
    assert codes == [0, 0], logs


def _checkpoint_values(directory, step):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(directory / f"ckpt-{step}"))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name.startswith(("weights/", "optimizer/"))
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Two workers, two epochs, never interrupted: the directory above the
    run's --logdir (`run`) and the workers' logs and scratch (`tmp`); tests
    only read it."""
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    _wait(_start_workers(tmp_path, tmp_path / "run"), tmp_path)
    return tmp_path


def test_multi_worker_killed_and_resumed_equals_uninterrupted(tmp_path, uninterrupted):
    whole = uninterrupted / "run"

    # The second epoch (with its save) took this long there.
    saved = [
        (whole / "checkpoints" / f"ckpt-{epoch * STEPS_PER_EPOCH}.index").stat()
        for epoch in (1, 2)
    ]
    second_epoch = saved[1].st_mtime - saved[0].st_mtime

    # Interrupted: worker 1 is SIGKILLed during the second epoch, once the
    # first epoch's checkpoint is indexed; worker 0, left waiting for it in a
    # collective, is stopped too; then both start again with --resume.
    broken = tmp_path / "broken"
    workers = _start_workers(tmp_path, broken)
    index = broken / "checkpoints" / "checkpoint"
    deadline = time.monotonic() + TIMEOUT
    try:
        while not (index.exists() and f"ckpt-{STEPS_PER_EPOCH}" in index.read_text()):
            assert time.monotonic() < deadline, "no checkpoint after the first epoch"
            assert all(w.poll() is None for w in workers), "a worker stopped early"
            time.sleep(0.05)
        # Into the second epoch, well before its end: a quarter of the
        # uninterrupted run's.
        time.sleep(second_epoch / 4)
        workers[1].send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            workers[0].wait(timeout=5)
    finally:
        for w in workers:
            w.kill()
            w.wait()
    last = f"ckpt-{2 * STEPS_PER_EPOCH}"
    assert not (broken / "checkpoints" / f"{last}.index").exists(), (
        f"killed too late ({second_epoch:.1f} s an epoch)"
    )
    _wait(_start_workers(tmp_path, broken, ["--resume"]), tmp_path)

    expected = _checkpoint_values(whole / "checkpoints", 2 * STEPS_PER_EPOCH)
    resumed = _checkpoint_values(broken / "checkpoints", 2 * STEPS_PER_EPOCH)
    assert expected.keys() == resumed.keys() and len(expected) > 50
    for name, value in expected.items():
        np.testing.assert_allclose(resumed[name], value, atol=1e-6, err_msg=name)
    worst = max(float(np.max(np.abs(resumed[n] - v))) for n, v in expected.items())
    print(f"killed and resumed against uninterrupted: largest difference {worst:.3g}")

    # Only the chief wrote: one events file per start in each log directory
    # (worker 1's would double them), and no worker left a scratch directory.
    for logdir, starts in ((whole, 1), (broken, 2)):
        for folder in ("train", "validation", "images"):
            events = list((logdir / folder).glob("events.out.tfevents.*"))
            assert len(events) == starts, (logdir, folder, events)
        assert (logdir / "test.json").exists()
    for scratch in (uninterrupted / "tmp", tmp_path / "tmp"):
        assert list(scratch.glob("keras_blocks-worker-*")) == []


def test_train_and_evaluate_only_on_two_replicas(tmp_path, uninterrupted):
    # Trained on 2 replicas with synchronized BN (the two workers), then
    # tested from its checkpoint on the 2 replicas of a MirroredStrategy:
    # every replica gets the checkpoint's values (Keras reads a first batch
    # even for zero epochs, which needs an image per replica), and the
    # accuracy is the one the training run measured.
    logdir = tmp_path / "run"
    shutil.copytree(uninterrupted / "run", logdir)  # the fixture's stays as is
    trained = json.loads((logdir / "test.json").read_text())["accuracy"]
    mirrored = ["--distribute", "mirrored", "--cpu-devices", "2"]
    done = subprocess.run(
        [*COMMAND, "--logdir", str(logdir), "--evaluate-only", *mirrored],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Distributed (mirrored): 2 replicas" in done.stdout
    assert json.loads((logdir / "test.json").read_text())["accuracy"] == trained


def test_a_global_batch_the_replicas_cannot_share_is_refused(tmp_path):
    logdir = tmp_path / "run"
    done = subprocess.run(
        [
            *COMMAND,
            "--logdir",
            str(logdir),
            "--batch-size",
            "1",
            "--distribute",
            "mirrored",
            "--cpu-devices",
            "2",
        ],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode != 0
    assert "--batch-size 1 is the global batch, shared by 2 replicas" in done.stderr
    assert "Traceback" not in done.stderr
    assert not logdir.exists()  # nothing written: the same command can run again
