"""Section `growth`: blocks, parameters, MACs (TensorFlow) and build time of
EfficientNet as `phi` goes from 0 to 9, beside the presets' MACs and the
paper's B0-B7 FLOPs."""

import statistics

import keras

from benchmarks import _harness
from keras_blocks import efficientnet, layers

# The paper's FLOPs of B0-B7 (Tan & Le 2019, Table 2), in billions.
PAPER_FLOPS = (0.39, 0.70, 1.0, 1.8, 4.2, 9.9, 19, 37)


def measure(args):
    """EfficientNet as phi grows: parameters, MACs and build time; beside
    them, the official preset Bk of the same index (its rounded coefficients)
    and the paper's FLOPs for it."""
    phis = range(2) if args.smoke else range(10)
    count_macs = None
    if keras.config.backend() == "tensorflow":
        from tools import flops

        count_macs = flops.count_macs
    rows = []
    for phi in phis:
        scaling = efficientnet.compound_scaling(phi)
        times = []
        for _ in range(1 if args.smoke else 3):
            seconds, model = _harness.timed(
                lambda phi=phi: efficientnet.EfficientNet(phi=phi),
                setup=_harness.clear_session,
            )
            times.append(seconds)
        row = {
            "phi": phi,
            "resolution": scaling.resolution,
            "width_coefficient": scaling.width_coefficient,
            "depth_coefficient": scaling.depth_coefficient,
            "blocks": sum(
                isinstance(layer, layers.MBConvBlock) for layer in model.layers
            ),
            "parameters": model.count_params(),
            "macs": count_macs(model) if count_macs else None,
            "build_s": statistics.median(times),
            "build_times_s": times,
            "preset_macs": None,
            "paper_flops_of_b": None,
        }
        if phi < len(PAPER_FLOPS):
            row["paper_flops_of_b"] = PAPER_FLOPS[phi]
            if count_macs:
                _harness.clear_session()
                row["preset_macs"] = count_macs(
                    getattr(efficientnet, f"EfficientNetB{phi}")()
                )
        rows.append(row)
        macs = f"{row['macs'] / 1e9:.2f} G MACs" if row["macs"] else ""
        print(
            f"  phi={phi} {row['resolution']}px {row['blocks']} blocks "
            f"{row['parameters']:,} params {macs} build {row['build_s']:.2f} s",
            flush=True,
        )
    return rows
