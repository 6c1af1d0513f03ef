"""Exact resume, proved: a run killed by SIGKILL in its saves (once between a
checkpoint's files and its index, once at a random moment as a random epoch
ends and its save begins) and restarted each time, a new process each time,
ends with the same weights and learning-rate state, bit for bit, as a run
never interrupted.

The run is `resume_child.py`: a small CNN on scikit-learn's digits with
`CheckpointManager` and `ReduceLROnPlateau` (cosine decay, warmup).
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import pytest

from tests import CHILDREN

CHILD = CHILDREN / "resume_child.py"
EPOCHS = 4
TIMEOUT = 600  # seconds for a run (each takes 5 to 20 s), generous under load
SAVED = re.compile(r"CheckpointManager: saved .*ckpt-(\d+)\.")
RESTORED = re.compile(r"CheckpointManager: restored .*ckpt-(\d+) \((\d+) epochs?")


def run_child(directory, output, kill_when=None, pause_in_save=None, straight=()):
    """Runs the child to its end, or SIGKILLs it once `kill_when(line)` is true;
    `pause_in_save`: the epoch whose save the child pauses in; `straight`: the
    directory and output of a run from scratch after it, in the process."""
    command = [sys.executable, str(CHILD), str(directory), str(output)]
    command += ["--epochs", str(EPOCHS)]
    if pause_in_save is not None:
        command += ["--pause-in-save", str(pause_in_save)]
    if straight:
        command += ["--straight", *map(str, straight)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    # A bound on a run that hangs (each takes seconds).
    timed_out = threading.Event()

    def stop():
        timed_out.set()
        process.kill()

    watchdog = threading.Timer(TIMEOUT, stop)
    watchdog.start()
    lines = []
    try:
        for line in process.stdout:
            lines.append(line.rstrip())
            if kill_when is not None and kill_when(line, lines):
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=TIMEOUT)
    finally:
        watchdog.cancel()
        process.stdout.close()
        if process.poll() is None:  # the test failed: leave nothing running
            process.kill()
            process.wait()
    assert not timed_out.is_set(), f"no end in {TIMEOUT} s: " + "\n".join(lines[-40:])
    expected = 0 if kill_when is None else -signal.SIGKILL
    assert process.returncode == expected, "\n".join(lines[-40:])
    return lines


def steps_of(pattern, lines):
    return [int(m.group(1)) for line in lines if (m := pattern.search(line))]


def after_epoch(epoch, delay):
    def kill_when(line, lines):
        if line.startswith(f"EPOCH_END {epoch}"):
            time.sleep(delay)  # then wherever the run is: saving, next epoch
            return True
        return False

    return kill_when


def in_epoch_2_save(line, lines):
    return line.startswith("MID_SAVE") and "EPOCH_END 2" in lines


def indexed_latest(directory):
    """The checkpoint the directory's index names as the latest."""
    if keras.config.backend() == "tensorflow":
        text = (directory / "checkpoint").read_text()
        return re.search(r'^model_checkpoint_path: "(.*)"', text, re.M).group(1)
    index = json.loads((directory / "checkpoint.json").read_text())
    return index["checkpoints"][-1]["name"]


@pytest.mark.slow
def test_sigkill_at_random_moments_resumes_exactly(tmp_path):
    directory, output = tmp_path / "killed", tmp_path / "killed.npz"
    # 1. Killed while writing epoch 2's checkpoint: its files are on disk but
    # the index still names epoch 1's, which is what the next run restores.
    lines = run_child(directory, output, in_epoch_2_save, pause_in_save=2)
    saved = steps_of(SAVED, lines)
    assert len(saved) == 1  # epoch 1's
    per_epoch = last_saved = saved[0]  # batches an epoch
    written = f"ckpt-{2 * per_epoch}"
    assert any(name.startswith(written) for name in os.listdir(directory))
    assert indexed_latest(directory) == f"ckpt-{per_epoch}"

    # 2. Killed at a random moment just after a random epoch's end: as that
    # epoch's save writes its files (the manager saves once every callback's
    # `on_epoch_end` has run), or, on a fast machine, just after it. A kill
    # later in an epoch leaves less on disk than 1. (the index names the last
    # complete checkpoint, and no files of the next one).
    rng = random.Random(0)
    epoch = rng.randrange(2, EPOCHS)
    lines = run_child(directory, output, after_epoch(epoch, rng.uniform(0, 0.1)))
    restored = steps_of(RESTORED, lines)
    # Nothing before the last save reported complete is lost.
    assert restored and restored[0] >= last_saved, lines[-20:]
    last_saved = max([last_saved, *steps_of(SAVED, lines)])

    # 3. The last restart runs to the end; then, in the same process (a start
    # costs more than the run), the reference: a run from scratch, never
    # interrupted, in a directory of its own.
    straight = (tmp_path / "straight", tmp_path / "straight.npz")
    lines = run_child(directory, output, straight=straight)
    resumed = lines[: lines.index("STRAIGHT")]
    assert steps_of(RESTORED, resumed)[0] >= last_saved
    reference = lines[lines.index("STRAIGHT") :]
    assert steps_of(RESTORED, reference) == []
    assert steps_of(SAVED, reference) == [per_epoch * e for e in range(1, EPOCHS + 1)]

    with np.load(straight[1]) as a, np.load(output) as b:
        assert a.files == b.files
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        state = json.loads(str(b["reducer"]))
    assert state["multiplier"] < 1  # the plateau reduced the schedule
