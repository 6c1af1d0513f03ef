"""Section `build`: construction time of EfficientNetB7 and ResNet152 against
keras.applications'."""

import keras

from benchmarks import _harness
from keras_blocks import efficientnet
from keras_blocks.models import resnet


def measure(args):
    """Construction time of the largest models."""
    # The smoke run builds smaller models through the same code paths, and
    # each once: no untimed warm-up build.
    variant, depth = ("B0", 50) if args.smoke else ("B7", 152)
    efficientnet_name, resnet_name = f"EfficientNet{variant}", f"ResNet{depth}"
    pairs = {
        efficientnet_name: (
            getattr(efficientnet, efficientnet_name),
            lambda: getattr(keras.applications, efficientnet_name)(weights=None),
        ),
        resnet_name: (
            lambda: resnet.ResNet(depth, layout="keras_applications"),
            lambda: getattr(keras.applications, resnet_name)(weights=None),
        ),
    }
    rows = []
    for name, (ours, reference) in pairs.items():
        result = _harness.compare(
            ours,
            reference,
            repeats=args.repeats,
            warmup=0 if args.smoke else 1,
            setup=_harness.clear_session,
        )
        rows.append({"case": f"build {name}", "input": "", "goal": 1.0, **result})
        _harness.report(rows[-1])
    return rows
