"""The pretrained-weights table of the docs, measured: for every model that a
source publishes a state dict for (the `WEIGHTS` of each family of
`keras_blocks.models`; keras.applications' weights, copied with
`set_weights`, are checked in tests/models), its own network at random
weights (every parameter and buffer) is saved as .safetensors, loaded into
ours, and the logits compared.

    KERAS_BACKEND=tensorflow python -m tools.pretrained_table

Writes docs/snippets/pretrained_weights.md (included by
docs/pretrained-weights.md) and benchmarks/results/pretrained_weights.json.
About 3 minutes on two CPU cores (VGG-19 and EfficientNet-B7 among them).
"""

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", nargs="*", help="family modules (default: all)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    # --help and a wrong argument answer before Keras loads (seconds).
    parse_args(None)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the references of the tests

from keras_blocks.models import (
    FAMILIES,
    WeightSource,
    get_model,
    load_pretrained,
    model_entry,
)
from tests.porting.torch_references import (
    randomized,
    save_state_dict,
    timm,
    torchvision,
)

SNIPPET = ROOT / "docs" / "snippets" / "pretrained_weights.md"
RESULTS = ROOT / "benchmarks" / "results" / "pretrained_weights.json"
URLS = {
    "torchvision": "https://download.pytorch.org/models/{file}",
    "timm": "https://huggingface.co/timm",
}
# Inputs: the flattening models need torchvision's 224x224; the others are
# checked at a size small enough to be quick and odd enough to exercise the
# paddings of strided convolutions.
SIZES = {"vgg": 224, "alexnet": 224}
SIZE = 97


def source_network(source, name):
    """The source's own network for our model `name`."""
    if source == "timm":
        return timm().create_model(name.replace("se_resnet", "seresnet"))
    architecture = name.removesuffix("_torchvision")
    if architecture == "googlenet":  # as its published weights build it
        return torchvision().models.googlenet(
            aux_logits=True, transform_input=True, init_weights=True
        )
    return torchvision().models.get_model(architecture)


def measure(source, name, options, directory):
    family = model_entry(name).family
    size = SIZES.get(family, SIZE)
    net = randomized(source_network(source, name), size=size)
    model = get_model(
        name, input_shape=(size, size, 3), classifier_activation=None, **options
    )
    _, path = save_state_dict(net, directory, name)
    start = time.perf_counter()
    report = load_pretrained(model, path, family_module(family).WEIGHTS[source])
    seconds = time.perf_counter() - start
    x = np.random.default_rng(0).normal(size=(1, size, size, 3)).astype("float32")
    import torch

    with torch.no_grad():
        theirs = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    ours = keras.ops.convert_to_numpy(model(x, training=False))
    difference = float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))
    return {
        "model": name,
        "source": source,
        "size": size,
        "values": report.values,
        "load_seconds": round(seconds, 2),
        "max_relative_difference": difference,
    }


def family_module(family):
    """The module of a family of `keras_blocks.models` (`"resnet"`)."""
    return importlib.import_module(f"keras_blocks.models.{family}")


def main(argv=None):
    args = parse_args(argv)
    unknown = sorted(set(args.family or ()) - set(FAMILIES))
    if unknown:
        raise SystemExit(f"--family: {', '.join(unknown)}: not one of {FAMILIES}")
    families = [f for f in FAMILIES if not args.family or f in args.family]
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for family in families:
            sources = getattr(family_module(family), "WEIGHTS", {})
            for source, weights in sources.items():
                if not isinstance(weights, WeightSource):
                    continue  # keras.applications': not a state dict
                for name, (file, top1, options) in weights.files.items():
                    row = measure(source, name, options, directory)
                    row.update(file=file, top1=top1, license=weights.license)
                    rows.append(row)
                    print(
                        f"{name:28s} {source:12s} {row['max_relative_difference']:.1e}"
                        f"  load {row['load_seconds']:.2f} s",
                        flush=True,
                    )
    RESULTS.write_text(
        json.dumps({"backend": keras.config.backend(), "rows": rows}, indent=1) + "\n"
    )
    lines = [
        "| Model | Source | File | Top-1 (source) | License | Max difference | "
        "Load time |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        top1 = "see its model card" if row["top1"] is None else f"{row['top1']:.3f}"
        lines.append(
            f"| `{row['model']}` | {row['source']} | `{row['file']}` | {top1} | "
            f"{row['license']} | {row['max_relative_difference']:.1e} | "
            f"{row['load_seconds']:.2f} s |"
        )
    SNIPPET.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
