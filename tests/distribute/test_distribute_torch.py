"""DDP on the PyTorch backend: what DDP does to Keras' variables,
`synchronize_batch_statistics`, and `examples/_ddp.py`'s `fit` loop.

The cases run on 2 processes of `distribute_child_torch.py` on a gloo group at
127.0.0.1 (a free port), started once for all of them (conftest.py's
`ddp_ranks`); they exit by themselves, and when one fails the other is
stopped, so a failure costs no timeout.
"""

import json

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.backends(
    "torch", reason="DistributedDataParallel is PyTorch's"
)

WORLD = 2


def results_of(ddp_ranks, case):
    """Each rank's npz (and json, if any) of `case`."""
    output = ddp_ranks(case)
    results = []
    for rank in range(WORLD):
        arrays = dict(np.load(output / f"rank{rank}.npz"))
        text = output / f"rank{rank}.json"
        results.append((arrays, json.loads(text.read_text()) if text.exists() else {}))
    return results


def rows_equal(rows):
    return all(np.array_equal(rows[0], row) for row in rows[1:])


@pytest.mark.slow
def test_ddp_gradients_weights_and_batch_statistics(ddp_ranks):
    (result, _), _ = results_of(ddp_ranks, "steps")
    # Each rank built its own weights; DDP broadcasts rank 0's when it wraps
    # the model, the non-trainable moving statistics included.
    assert not rows_equal(result["weights_at_start"])
    assert rows_equal(result["weights_after_wrap"])
    np.testing.assert_array_equal(
        result["weights_after_wrap"][1], result["weights_at_start"][0]
    )
    # Backward through DDP: each rank's gradient is the mean of the ranks'
    # own gradients (which differ: each rank has its own samples).
    local, ddp = result["local_gradients"], result["ddp_gradients"]
    assert not rows_equal(local)
    assert rows_equal(ddp)
    np.testing.assert_allclose(ddp[0], local.mean(axis=0), rtol=1e-5, atol=1e-6)
    # Steps keep the trained weights equal, bit for bit ...
    assert rows_equal(result["trainable_after_steps"])
    # ... but not the moving statistics: DDP never broadcasts them again.
    before, after = result["statistics_before"], result["statistics_after"]
    assert not np.allclose(before[0], before[1])
    assert int(result["synchronized"]) == 3  # ConvBNAct's, ResidualBlock's two
    assert rows_equal(after)
    np.testing.assert_allclose(after[0], before.mean(axis=0), rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_fit_ddp_equals_one_process(ddp_ranks):
    """2 ranks of 8 samples a step against Keras' `fit` on the 16 at once.

    The model has no batch normalization: in training mode it normalizes with
    each rank's 8 samples, not the 16, which changes the outputs and so the
    gradients. Without it the mean of the ranks' gradients is the gradient of
    the global batch, and the runs agree up to float32 rounding.
    """
    (first, logs), (_, second_logs) = results_of(ddp_ranks, "equal")
    assert rows_equal(first["ddp_weights"])  # equal across ranks
    assert second_logs["ddp"] == logs["ddp"]  # every rank logged the same
    np.testing.assert_allclose(first["ddp_weights"][0], first["one_weights"], atol=1e-5)
    for name, values in logs["one"].items():
        # Losses and accuracies over the global batch (and the whole
        # validation set), the rate the reducer set: as Keras' `fit` logs them.
        np.testing.assert_allclose(logs["ddp"][name], values, rtol=1e-5, err_msg=name)
    # The rate each epoch used: halved after epochs 2 and 3 (min_delta=10).
    np.testing.assert_allclose(logs["ddp"]["learning_rate"], [0.05, 0.05, 0.025])


@pytest.mark.slow
def test_fit_ddp_with_the_library_callbacks(ddp_ranks):
    """`CheckpointManager`, `TensorBoardImageLogger` and `ReduceLROnPlateau` in
    `_ddp.fit` on 2 ranks, in directories they share; then a resumed run."""
    (first, logs), (second, second_logs) = results_of(ddp_ranks, "loop")
    for result in (first, second):
        assert rows_equal(result["weights"])  # BN statistics included
        assert rows_equal(result["learning_rate"])
    # Halved after epochs 2 and 3 (min_delta=10); the resumed run restored
    # the reducer's state with the checkpoint.
    assert first["learning_rate"][0, 0] == pytest.approx(0.05 / 4)
    assert logs["first"]["epoch"] == [0, 1]
    assert logs["resumed"]["epoch"] == [2]  # initial_epoch from the checkpoint
    # A callback stopped rank 1 in the second batch: both ranks stopped there.
    assert logs["stopped"] == {"epoch": [0], "batches": 2}
    assert second_logs == {**logs, "pid": second_logs["pid"]}  # the same logs
    # Only rank 0 writes: every event file carries the pid of its writer.
    # (Needs TensorBoardImageLogger's chief gating; without it rank 1 writes
    # event files too and this fails, as it did at 9915ff8.)
    run = ddp_ranks("loop") / "run"
    # events.out.tfevents.<time>.<host>.<pid>.<n>.v2
    writers = {p.name.split(".")[-3] for p in run.rglob("events.out.tfevents.*")}
    assert writers == {str(logs["pid"])}
    index = json.loads((run / "checkpoints" / "checkpoint.json").read_text())
    assert len(index["checkpoints"]) == 3


def test_fit_ddp_without_a_process_group_is_fit():
    """One process, no torchrun: the loop trains as Keras' `fit` does."""
    from examples import _ddp

    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 4)).astype("float32")
    y = rng.integers(0, 3, size=24).astype("int32")
    runs = []
    for fit in (_ddp.fit, lambda model, *args, **kwargs: model.fit(*args, **kwargs)):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        history = fit(
            model, x, y, batch_size=8, epochs=2, verbose=0, shuffle=False,
            validation_data=(x[:10], y[:10]),
        )  # fmt: skip
        runs.append((model.get_weights(), history.history))
    (weights, logs), (weights_of_fit, logs_of_fit) = runs
    for ours, theirs in zip(weights, weights_of_fit, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert logs.keys() == logs_of_fit.keys()
    for name, values in logs_of_fit.items():
        np.testing.assert_allclose(logs[name], values, rtol=1e-5, err_msg=name)
