"""Runs that several test files read, each started once a session:

- `mirrored_parts`: one TensorFlow process for the runs under
  `MirroredStrategy` over 2 logical CPUs (test_distribute_tf.py,
  test_distribute_callbacks_tf.py, test_distribute_registry_tf.py); logical
  devices are set before TensorFlow starts.
- `ddp_ranks`: one 2-rank torch.distributed group (gloo on 127.0.0.1, a free
  port) for test_distribute_torch.py and test_distribute_checkpoint.py.

A process's start (5 to 10 s of imports, and the group's) is most of what
such a run costs.
"""

import os
import subprocess
import sys

import pytest

from tests import CHILDREN, ROOT
from tests.distribute.processes import free_ports, python_path, run_together

CHILD_TF = CHILDREN / "distribute_child_tf.py"
CHILD_TORCH = CHILDREN / "distribute_child_torch.py"
TIMEOUT = 900  # seconds for a whole run, generous for a loaded machine
WORLD = 2
DDP_CASES = ("steps", "loop", "checkpoint", "equal")  # `equal` leaves the group


@pytest.fixture(scope="session")
def mirrored_parts(tmp_path_factory):
    """`part(name)`: the directory of what `distribute_child_tf.py`'s part
    `name` wrote (blocks, callbacks, registry), once it is known to have
    finished without an error."""
    from tests.distribute.test_distribute_registry_tf import CASES

    directory = tmp_path_factory.mktemp("mirrored")
    scratch = directory / "tmp"  # the child's temporary files
    scratch.mkdir()
    env = {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TMPDIR": str(scratch),
        "PYTHONPATH": python_path(),
        "CUDA_VISIBLE_DEVICES": "",
    }
    env.pop("TF_CONFIG", None)
    done = subprocess.run(
        [sys.executable, str(CHILD_TF), str(directory), *CASES],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )

    def part(name):
        error = directory / name / "error.txt"
        assert done.returncode == 0 and not error.exists(), (
            error.read_text() if error.exists() else ""
        ) + done.stderr[-3000:]
        return directory / name

    return part


@pytest.fixture(scope="session")
def ddp_ranks(tmp_path_factory):
    """`case(name)`: the directory where both ranks of
    `distribute_child_torch.py` wrote case `name`, once both exited cleanly.
    When one rank fails the other is stopped, so a failure costs no
    timeout."""
    from tests.distribute.test_distribute_checkpoint import write_alone

    output = tmp_path_factory.mktemp("ddp")
    write_alone(output / "checkpoint" / "chief")
    env = {
        **os.environ,
        "KERAS_BACKEND": "torch",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_ports(1)[0]),
        "WORLD_SIZE": str(WORLD),
        "PYTHONPATH": python_path(),
        "OMP_NUM_THREADS": "1",  # two processes on a shared machine
        "CUDA_VISIBLE_DEVICES": "",  # gloo on the CPU
    }
    commands = [
        (
            [sys.executable, str(CHILD_TORCH), str(output), *DDP_CASES],
            {**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
        )
        for rank in range(WORLD)
    ]
    codes, logs = run_together(commands, output, TIMEOUT, name="rank")

    def case(name):
        assert codes == [0] * WORLD, logs
        return output / name

    return case
