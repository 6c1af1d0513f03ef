"""The benchmark scripts run (one short repeat); their figures come from full runs."""

import json

from scripts import load_script


def test_efficientnet_build_benchmark_smoke(tmp_path):
    output = tmp_path / "result.json"
    result = load_script("benchmarks", "efficientnet_build").main(
        ["--variant", "b0", "--repeats", "1", "--output", str(output)]
    )
    assert json.loads(output.read_text()) == result
    assert result["parameters"] == {
        "keras_blocks": 5_330_571,
        "keras.applications": 5_330_571,
    }
    assert result["ratio_of_medians"] > 0
