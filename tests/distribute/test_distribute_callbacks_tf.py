"""`TensorBoardImageLogger` and `ReduceLROnPlateau` under `tf.distribute`.

The runs are `distribute_child_callbacks.py`'s, in processes of their own (a
strategy's devices are set before TensorFlow starts), each with a timeout:

- `MirroredStrategy` over 2 logical CPUs, `fit` outside and inside the
  strategy's scope: the logger writes what it writes for the same weights
  on one device, and the reducer reduces. A part of the process that
  conftest.py's `mirrored_parts` starts.
- `keras_blocks.distribute.MultiWorkerMirroredStrategy` over 2 worker
  processes on 127.0.0.1 (free ports): only the chief writes events, the
  other worker leaves no file, and both take the reducer's decisions on the
  mean of their monitored values.
"""

import io
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

from tests import CHILDREN
from tests.distribute.processes import free_ports, python_path, run_together

# Processes of their own, each tens of seconds.
pytestmark = [
    pytest.mark.backends("tensorflow", reason="tf.distribute is TensorFlow's"),
    pytest.mark.slow,
]

CHILD = CHILDREN / "distribute_child_callbacks.py"
TIMEOUT = 480  # seconds for a run (each took 17 to 40 s on 2 busy cores)
WORKERS = 2
# The child's settings: 3 classes, 12 validation images, every feature logged
# at both epochs (steps 0 and 1), and the reducer's rate and factor.
CLASSES, VAL, RATE, FACTOR = 3, 12, 0.1, 0.5
# The documented confusion matrix: 100 pixels of row labels, 28 of title and
# column labels, 32-pixel cells, each shaded by its count's fraction of the
# row, from white to (8, 48, 107).
CM_LEFT, CM_TOP, CM_CELL = 100, 28, 32
CM_DARK = np.array((8, 48, 107))


def run_children(arguments, output):
    """Runs one child per argument list, all at once, each with its own
    TMPDIR (output/tmpN); returns their exit codes and their output's end."""
    commands = []
    for index, args in enumerate(arguments):
        temporary = output / f"tmp{index}"
        temporary.mkdir(parents=True)
        env = {
            **os.environ,
            "KERAS_BACKEND": "tensorflow",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TMPDIR": str(temporary),
            "PYTHONPATH": python_path(),
            "CUDA_VISIBLE_DEVICES": "",
        }
        env.pop("TF_CONFIG", None)
        commands.append(([sys.executable, str(CHILD), *args], env))
    return run_together(commands, output, TIMEOUT)


def read_events(log_dir):
    """{tag: {step: value}}: images decoded to RGB arrays, histograms as their
    (buckets, 3) tables, scalars as floats."""
    accumulator = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    accumulator.Reload()
    events = {}
    for tag in accumulator.Tags()["tensors"]:
        plugin = accumulator.SummaryMetadata(tag).plugin_data.plugin_name
        for event in accumulator.Tensors(tag):
            value = tensor_util.make_ndarray(event.tensor_proto)
            if plugin == "images":  # [width, height, png]
                value = np.asarray(Image.open(io.BytesIO(value[2])).convert("RGB"))
            events.setdefault(tag, {})[event.step] = value
    return events


def assert_same_summaries(events, reference, step=1):
    """`events` at `step` hold what the one-device `reference` holds (but the
    learning rate, which the reference's new optimizer does not share)."""
    assert set(events) == set(reference)
    assert {"confusion_matrix", "images/predictions", "learning_rate"} < set(events)
    assert any(tag.startswith("gradients/") for tag in events)
    for tag, values in reference.items():
        if tag == "learning_rate":
            continue
        ours, theirs = events[tag][step], values[step]
        if tag in ("confusion_matrix", "images/predictions"):
            np.testing.assert_array_equal(ours, theirs, err_msg=tag)
        else:  # histogram tables: (left edge, right edge, count)
            # Edges within float32 rounding of the values' scale (a traced
            # function and eager ops round differently), which may also move
            # a value on an edge to the next bucket.
            scale = np.abs(theirs[:, :2]).max()
            np.testing.assert_allclose(
                ours[:, :2], theirs[:, :2], rtol=0, atol=1e-4 * scale, err_msg=tag
            )
            counts, expected = ours[:, 2], theirs[:, 2]
            assert counts.sum() == expected.sum(), tag
            moved = np.abs(np.cumsum(counts) - np.cumsum(expected)).max()
            assert moved <= max(1, 0.02 * expected.sum()), (tag, counts, expected)


def assert_confusion_matrix(image, labels, predictions):
    """Each cell of the image is shaded by the fraction of its row that
    `predictions` (one device's `predict`) put there."""
    counts = np.zeros((CLASSES, CLASSES))
    np.add.at(counts, (labels, np.argmax(predictions, axis=-1)), 1)
    fractions = counts / counts.sum(axis=1, keepdims=True)
    for (row, column), fraction in np.ndenumerate(fractions):
        corner = image[CM_TOP + row * CM_CELL + 1, CM_LEFT + column * CM_CELL + 1]
        shade = np.round(255 + fraction * (CM_DARK - 255))
        np.testing.assert_array_equal(corner, shade, err_msg=f"cell {row, column}")


def validation_labels():
    return np.arange(32, 32 + VAL) % CLASSES  # the child's y[TRAIN:]


def test_logger_and_reducer_under_mirrored_strategy(mirrored_parts):
    tmp_path = mirrored_parts("callbacks")
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["replicas"] == 2
    # Fit outside the scope, then inside it (where callbacks run in the
    # strategy's cross-replica context, and Keras divides losses by 2).
    for suffix, predictions in zip(
        ("", "_in_scope"), results["predictions"], strict=True
    ):
        events = read_events(tmp_path / f"logs{suffix}")
        reference = read_events(tmp_path / f"reference{suffix}")
        assert all(sorted(events[tag]) == [0, 1] for tag in events)
        assert_same_summaries(events, reference)
        assert_confusion_matrix(
            events["confusion_matrix"][1], validation_labels(), predictions
        )
    # The reducer (loss never improving by min_delta=10) halves the rate at
    # the second epoch of each fit: the logger, listed first, logs the rate
    # in use, as History does.
    first, second = results["histories"]
    np.testing.assert_allclose(first["learning_rate"], [RATE, RATE])
    np.testing.assert_allclose(second["learning_rate"], [RATE * FACTOR] * 2)
    np.testing.assert_allclose(results["final_rate"], RATE * FACTOR**2, rtol=1e-6)
    logged = read_events(tmp_path / "logs")["learning_rate"]
    np.testing.assert_allclose([logged[0], logged[1]], [RATE, RATE])


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    """Two workers of a `MultiWorkerMirroredStrategy`; task 0 is the chief."""
    output = tmp_path_factory.mktemp("workers")
    ports = ",".join(map(str, free_ports(WORKERS)))
    codes, logs = run_children(
        [["worker", str(output), str(index), ports] for index in range(WORKERS)],
        output,
    )
    return dict(output=output, codes=codes, logs=logs)


def worker_results(workers, name):
    paths = [workers["output"] / f"{name}{index}.json" for index in range(WORKERS)]
    assert all(path.exists() for path in paths), workers["logs"]
    return [json.loads(path.read_text()) for path in paths]


def test_reducer_decides_on_the_mean_over_workers(workers):
    # Fed val_loss 1, 0.5, 0.25 on worker 0 (improving) and 1, 2, 3 on
    # worker 1: on their own, worker 0 would keep 0.1 and worker 1 reduce
    # twice. Their mean, 1, 1.25, 1.625, does not improve after the first.
    chief, other = worker_results(workers, "reducer")
    assert chief == other, (chief, other)
    assert chief["best"] == 1.0
    np.testing.assert_allclose(chief["learning_rate"], RATE * FACTOR**2, rtol=1e-6)


def test_only_the_chief_writes_events(workers):
    assert workers["codes"] == [0] * WORKERS, workers["logs"]
    chief, other = worker_results(workers, "fit")
    assert chief["is_chief"] and not other["is_chief"]
    # Keras reduces the logged metrics over the workers: same history.
    assert chief["history"] == other["history"]
    output = workers["output"]
    files = os.listdir(output / "logs")
    assert len(files) == 1 and f".{chief['pid']}." in files[0], files
    events, reference = read_events(output / "logs"), read_events(output / "reference")
    assert all(sorted(events[tag]) == [0, 1] for tag in events)
    assert_same_summaries(events, reference)
    assert_confusion_matrix(
        events["confusion_matrix"][1], validation_labels(), chief["predictions"]
    )
    # Nothing else was written: no temporary directory left behind either.
    for index in range(WORKERS):
        assert os.listdir(output / f"tmp{index}") == []
    assert sorted(os.listdir(output)) == sorted(
        ["logs", "reference"]
        + [
            f"{kind}{i}{suffix}"
            for i in range(WORKERS)
            for kind, suffix in (
                ("child", ".log"),
                ("fit", ".json"),
                ("reducer", ".json"),
                ("tmp", ""),
            )
        ]
    )
