"""The benchmark scripts run (one short repeat); their figures come from full runs."""

import importlib.util
import json
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_efficientnet_build_benchmark_smoke(tmp_path):
    output = tmp_path / "result.json"
    result = load_benchmark("efficientnet_build").main(
        ["--variant", "b0", "--repeats", "1", "--output", str(output)]
    )
    assert json.loads(output.read_text()) == result
    assert result["parameters"] == {
        "keras_blocks": 5_330_571,
        "keras.applications": 5_330_571,
    }
    assert result["ratio_of_medians"] > 0
