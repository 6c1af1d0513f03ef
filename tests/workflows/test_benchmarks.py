"""The benchmark scripts run (one short repeat); their figures come from full runs."""

import json

import keras
import numpy as np
import pytest

from benchmarks import _harness, _pairs, efficientnet_build, lrn, run
from keras_blocks.layers import LocalResponseNormalization


@pytest.mark.slow
@pytest.mark.backend_independent(
    reason="the script's file and parameter counts; the builds' speed is the "
    "benchmark's, and the models are checked on each backend in tests/models"
)
@pytest.mark.usefixtures("without_forced_collections")
def test_efficientnet_build_benchmark_smoke(tmp_path):
    output = tmp_path / "result.json"
    result = efficientnet_build.main(
        ["--variant", "b0", "--repeats", "1", "--output", str(output)]
    )
    assert json.loads(output.read_text()) == result
    assert result["parameters"] == {
        "keras_blocks": 5_330_571,
        "keras.applications": 5_330_571,
    }
    assert result["ratio_of_medians"] > 0


@pytest.fixture
def pairs_built_once(monkeypatch):
    """`_pairs.model_pairs` building its pairs once in a run.

    `models` and `throughput` each build and compile the same ResNet50 and
    EfficientNetB0 pairs and run the same training step (the smoke run's
    batches are both 2): about 60 s of `throughput`'s 70 under TensorFlow on
    one core. A smoke run keeps the first section's pairs for the other,
    which runs all its own code on them; `model_pairs` itself runs once, in
    `models`.
    """
    build_pairs, built = _pairs.model_pairs, []

    def model_pairs(args):
        if built:
            yield from built
            return
        pairs = []
        for pair in build_pairs(args):
            pairs.append(pair)
            yield pair
        built.extend(pairs)

    monkeypatch.setattr(_pairs, "model_pairs", model_pairs)


# The smoke run's sections, every one but deploy (test_benchmarks_deploy.py
# checks its smoke run on its own: its exports cost more than the rest of a
# section), in runs that pytest-xdist spreads over its workers: one run of
# them all (~4 minutes) held up the end of the TensorFlow CI run. The
# models and throughput run together, to share their model pairs; graphs,
# which counts traced operations, runs on TensorFlow alone.
CHEAPEST_ON_PYTORCH = pytest.mark.backends(
    "torch",
    reason="the section runs on every backend; PyTorch's pass runs it without "
    "tracing (the models' and throughput's smoke run: 33 s of CPU under "
    "PyTorch, 165 s under TensorFlow; callbacks': 14 s)",
)
SMOKE_RUNS = (
    pytest.param(("models", "throughput"), marks=CHEAPEST_ON_PYTORCH),
    ("graphs",),
    pytest.param(("callbacks",), marks=CHEAPEST_ON_PYTORCH),
    # native measures nothing off PyTorch (test_native_smoke runs it there).
    # Each group in the order of run.SECTIONS, which the results keep.
    ("native", "build", "lrn", "distribute", "growth"),
)
# The comparison rows each timed section has in a smoke run.
SMOKE_COMPARISONS = {
    "models": 4,
    "throughput": 2,
    "build": 2,
    "lrn": 8,
    "callbacks": 4,
    "distribute": 2,
}


@pytest.mark.slow
@pytest.mark.backends("torch", reason="torchvision in plain PyTorch")
@pytest.mark.usefixtures("without_forced_collections")
def test_native_smoke(tmp_path):
    output, table = tmp_path / "results.json", tmp_path / "table.md"
    options = ["--smoke", "--output", str(output), "--markdown", str(table)]
    results = run.main([*options, "--only", "native"])
    rows = results["native"]
    # ResNet-50 in smoke: inference and a training step in each data format.
    assert [row["case"] for row in rows] == [
        f"ResNet50 {task}, {data_format}, against torchvision"
        for data_format in ("channels_last", "channels_first")
        for task in ("inference", "training step")
    ]
    for row in rows:
        assert row["ours_s"] > 0 and row["reference_s"] > 0
        assert row["ratio"] == row["ours_s"] / row["reference_s"]
        assert row["case"] in table.read_text()


@pytest.mark.backend_independent(reason="names compared in Python")
def test_smoke_runs_hold_every_section_but_deploy():
    runs = [getattr(run, "values", (run,))[0] for run in SMOKE_RUNS]
    sections = [name for sections in runs for name in sections]
    expected = [name for name in run.SECTIONS if name != "deploy"]
    assert sorted(sections) == sorted(expected), "a new section goes in SMOKE_RUNS"


@pytest.mark.slow
@pytest.mark.backends(
    "tensorflow",
    reason="graphs, growth's MACs and MirroredStrategy exist on TensorFlow "
    "only; the smoke run goes there once, less what runs cheapest on PyTorch "
    "(test_lrn_functions covers each backend)",
)
@pytest.mark.usefixtures(
    "without_forced_collections",
    "optimizers_built_at_compile",
    "without_graph_optimizations",
    "pairs_built_once",
)
@pytest.mark.parametrize("sections", SMOKE_RUNS, ids="-".join)
def test_run_smoke(tmp_path, sections):
    output, table = tmp_path / "results.json", tmp_path / "table.md"
    options = ["--smoke", "--output", str(output), "--markdown", str(table)]
    results = run.main([*options, "--only", *sections])
    assert json.loads(output.read_text())["measured"] == results["measured"]
    assert list(results["measured"]) == list(sections)
    assert results["environment"]["accelerator"] is None  # CI has no GPU
    timed = [name for name in sections if name in SMOKE_COMPARISONS]
    comparisons = [row for name in timed for row in results[name]]
    assert len(comparisons) == sum(SMOKE_COMPARISONS[name] for name in timed)
    for row in comparisons:
        assert row["ours_s"] > 0 and row["reference_s"] > 0
        assert row["ratio"] == row["ours_s"] / row["reference_s"]
        assert row["pair_ratio_min"] <= row["pair_ratio_max"]
        case = row["case"].removeprefix("epoch with ")
        assert case.removesuffix(" training throughput") in table.read_text()
    if "graphs" in sections:
        # The same convolutions, batch norms and matrix products as
        # keras.applications: no block adds work to the traced graphs.
        assert len(results["graphs"]) == 4
        for row in results["graphs"]:
            for op in ("Conv2D", "DepthwiseConv2dNative", "FusedBatchNormV3", "MatMul"):
                assert op not in row["differences"], row
    for row in results.get("throughput", []):  # 2 steps of batch 2 a call
        assert row["ours_images_per_s"] == 4 / row["ours_s"]
    if "callbacks" in sections:
        # The callbacks' hook time: the reducer's is a small part of the
        # others' (about 1/1000). The logger's against all three's is not
        # compared: at smoke sizes both are mostly the logger's first
        # tracing, and which run pays more of it varies (0.47 against 0.44
        # in one CI run on two cores); the benchmark itself compares them at
        # full size.
        shares = {row["case"]: row["hook_share"] for row in results["callbacks"]}
        assert all(share > 0 for share in shares.values()), shares
        reducer = shares["epoch with ReduceLROnPlateau"]
        assert reducer < shares["epoch with TensorBoardImageLogger"], shares
        assert reducer < shares["epoch with all three"], shares
    if "distribute" in sections:
        check_distribute_rows(results, table, engine="MirroredStrategy")
    if "growth" in sections:
        growth = results["growth"]
        assert [row["parameters"] for row in growth] == [5_330_571, 9_177_569]
        assert growth[0]["macs"] == 385_814_752
        assert [row["blocks"] for row in growth] == [16, 23]
        # phi = 1 is not B1: B1 rounds the coefficients (depth 1.1, 240 pixels).
        assert [row["preset_macs"] for row in growth] == [385_814_752, 686_802_832]


@pytest.mark.slow
@pytest.mark.backends(
    "jax",
    "torch",
    reason="JAX's DataParallel rows, PyTorch's none (test_run_smoke runs TensorFlow's)",
)
def test_distribute_smoke(tmp_path):
    """2 replicas against 1, in the child process that sets up the devices;
    PyTorch has no in-process engine to time and reports no row."""
    output, table = tmp_path / "results.json", tmp_path / "table.md"
    arguments = ["--only", "distribute", "--smoke", "--output", str(output)]
    results = run.main([*arguments, "--markdown", str(table)])
    assert json.loads(output.read_text())["distribute"] == results["distribute"]
    if keras.backend.backend() == "torch":
        assert results["distribute"] == []
        return
    check_distribute_rows(results, table, engine="DataParallel")


def check_distribute_rows(results, table, engine):
    """The smoke run's rows: a ResNet-8 per `bn_synchronized` value measured,
    its global batch of 4 split 2 and 2, the efficiency the inverse ratio;
    the table says the section's own settings."""
    assert results["measured"]["distribute"]["settings"] == (
        "2 replicas against 1, batch 2 a replica, 1 steps a call, 1 repeats, "
        "float32, jit_compile=auto (smoke)"
    )
    rows = results["distribute"]
    synchronized = (False, True) if engine == "MirroredStrategy" else (False,)
    assert [row["case"] for row in rows] == [
        f"CIFAR ResNet-8, bn_synchronized={value}" for value in synchronized
    ]
    for row in rows:
        assert row["engine"].startswith(f"{engine}, 2 ")
        assert len(row["devices"]) == row["replicas"] == 2
        assert row["replica_batches"] == [2, 2]
        assert row["ours_s"] > 0 and row["reference_s"] > 0
        assert row["efficiency"] == pytest.approx(row["reference_s"] / row["ours_s"])
        assert row["efficiency_min"] <= row["efficiency"] <= row["efficiency_max"]
        assert row["ours_images_per_s"] == 4 / row["ours_s"]  # 1 step of 2 x 2
        assert row["reference_images_per_s"] == 2 / row["reference_s"]
        assert row["case"] in table.read_text()


def test_lrn_functions_match_tensorflow():
    """Our compiled LRN, forward and backward, on this backend, against
    TensorFlow's kernel: what the `lrn` benchmark times."""
    tf = pytest.importorskip("tensorflow")
    layer = LocalResponseNormalization(**lrn.LRN_ARGS)
    forward, backward, to_tensor = lrn.lrn_functions(layer)
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 12)).astype("float32")
    x_tf = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_tf)
        y = tf.nn.local_response_normalization(x_tf, **lrn.LRN_ARGS)
        loss = tf.reduce_sum(y)
    gradient = tape.gradient(loss, x_tf)
    np.testing.assert_allclose(forward(to_tensor(x)), y.numpy(), atol=1e-5)
    np.testing.assert_allclose(backward(to_tensor(x)), gradient.numpy(), atol=1e-5)


@pytest.mark.backend_independent(reason="the results file's bookkeeping")
def test_only_updates_its_sections(tmp_path):
    """`--only` keeps the other sections of an earlier file of the same
    environment, and starts over on another's."""
    environment = _harness.environment()
    output = tmp_path / "results.json"
    earlier = {
        "environment": environment,
        "measured": {"models": {"date": "d", "settings": "s"}},
        "models": [{"case": "ResNet50 inference"}],
    }
    output.write_text(json.dumps(earlier))
    args = run.argparse.Namespace(only=["lrn"], smoke=False)
    assert run._earlier_results(output, environment, args) == earlier
    args.only = ["models", "lrn"]
    assert run._earlier_results(output, environment, args)["measured"] == {}
    args.only, args.smoke = ["lrn"], True
    assert run._earlier_results(output, environment, args)["measured"] == {}
    args.smoke = False
    other = {**environment, "versions": {"keras": "0.0"}}
    assert run._earlier_results(output, other, args)["measured"] == {}
