"""The `deploy` benchmark section runs (one short repeat of a CIFAR
ResNet-8); its figures come from a full run."""

import json

import pytest

from benchmarks import deploy, run


@pytest.mark.slow
@pytest.mark.backends(
    "tensorflow",
    reason="LiteRT exports from TensorFlow only: the section's rows are there",
)
@pytest.mark.usefixtures("without_forced_collections")
def test_deploy_smoke(tmp_path):
    """Every runtime against Keras for each batch, timed in one loop: the
    same Keras times in the rows of a batch, each ratio its times' ratio,
    outputs equal to Keras'; the tables and the settings say what ran."""
    output, table = tmp_path / "results.json", tmp_path / "table.md"
    arguments = ["--only", "deploy", "--smoke", "--note", "a test run"]
    results = run.main([*arguments, "--output", str(output), "--markdown", str(table)])
    assert json.loads(output.read_text())["deploy"] == results["deploy"]
    measured = results["measured"]["deploy"]
    assert measured["settings"] == (
        "batch 1 and 2, 1 repeats, float32, jit_compile=auto, LiteRT and ONNX "
        f"Runtime on {deploy.cores()} threads, TensorFlow on its default "
        "intra-op threads (smoke)"
    )
    assert measured["note"] == "a test run"
    assert len(measured["load_average"]) == 2
    rows = results["deploy"]
    runtimes = ["SavedModel", "LiteRT", "ONNX Runtime"]
    assert [row["case"] for row in rows] == [
        f"CIFAR ResNet-8 batch {batch}, {runtime}"
        for batch in (1, 2)
        for runtime in runtimes
    ]
    formats = {"SavedModel": "tf_saved_model", "LiteRT": "litert"}
    for row in rows:
        assert row["format"] == formats.get(row["runtime"], "onnx")
        assert row["input"] == f"{row['batch_size']}x8x8x3, float32"
        assert row["ours_s"] > 0 and row["reference_s"] > 0
        assert row["ratio"] == row["ours_s"] / row["reference_s"]
        assert row["pair_ratio_min"] <= row["ratio"] <= row["pair_ratio_max"]
        assert len(row["times_s"]["ours"]) == len(row["times_s"]["reference"]) == 1
        assert row["calls"] == 1 and row["warmup"] == 2
        assert row["ours_images_per_s"] == row["batch_size"] / row["ours_s"]
        assert row["reference_images_per_s"] == row["batch_size"] / row["reference_s"]
        assert row["size_bytes"] > 0 and row["reference_size_bytes"] > 0
        assert row["export_s"] > 0
        assert row["max_difference"] <= 1e-5, row  # the same model runs
    for batch in (1, 2):  # one Keras timing per batch, shared by its rows
        of_batch = [row for row in rows if row["batch_size"] == batch]
        assert len({row["reference_s"] for row in of_batch}) == 1
    # The benchmarks' table holds the deploy tables, and so does the
    # Deployment page's snippet beside it, with the note and the load.
    snippet = (tmp_path / "deploy_benchmark.md").read_text()
    assert "a test run" in snippet and "Load average (1 minute)" in snippet
    for text in (table.read_text(), snippet):
        assert "| CIFAR ResNet-8 | 1 (latency) |" in text
        assert "| CIFAR ResNet-8 | 2 (throughput) |" in text
        for row in rows:
            assert f"{row['runtime']} ({row['format']})" in text


@pytest.mark.backends("jax", "torch", reason="the section skips itself off TensorFlow")
def test_deploy_elsewhere_has_no_rows(tmp_path):
    """Other backends skip the section, saying so, and write no snippet."""
    output, table = tmp_path / "results.json", tmp_path / "table.md"
    arguments = ["--only", "deploy", "--smoke", "--output", str(output)]
    results = run.main([*arguments, "--markdown", str(table)])
    assert results["deploy"] == []
    assert not (tmp_path / "deploy_benchmark.md").exists()
