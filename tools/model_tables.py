"""Parameter and MAC tables of the reference models, for the documentation.

Builds the reference models of each family of `keras_blocks.models` (by
name, with `get_model`) and, where one exists, its keras.applications
counterpart with `weights=None`, counts parameters and multiply-accumulates
(`flops.count_macs`, one image at the model's default size) and writes one
Markdown table per family to docs/snippets/ (`resnet_counts.md`, ...), which
the model pages include. The papers' figures in the tables are typed in below
with their sources (`ROWS`); a family without rows there gets a row per named
model. Every other number is computed here. The exact counts also go to
benchmarks/results/model_counts.json.

    KERAS_BACKEND=tensorflow python -m tools.model_tables
    KERAS_BACKEND=tensorflow python -m tools.model_tables --family vgg

The whole run builds about 70 models, B7 and ResNet-152 among them: about 7
minutes on two shared CPU cores. `--reuse` rewrites the tables from the
results file without building again.
"""

import argparse
import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
SNIPPETS = ROOT / "docs" / "snippets"
RESULTS = ROOT / "benchmarks" / "results" / "model_counts.json"


def family_name(name):
    """argparse `type=` for --family: one of `keras_blocks.models.FAMILIES`.
    Checking it loads Keras (the registry is the family modules'), so only a
    given --family pays for it."""
    from keras_blocks.models import FAMILIES

    if name not in FAMILIES:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {name!r} (choose from {', '.join(FAMILIES)})"
        )
    return name


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--family",
        nargs="+",
        type=family_name,
        help="families of keras_blocks.models (default: all)",
    )
    parser.add_argument("--output", type=Path, default=SNIPPETS)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="take the counts of the models that the results file holds from "
        "there (to rewrite the tables' text without building them again)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    # --help and a wrong argument answer before Keras loads (seconds).
    parse_args(None)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from keras_blocks import efficientnet
from keras_blocks.models import FAMILIES, get_model, list_models, model_entry
from tools import flops

NOT_GIVEN = "not given"
NONE = "—"  # no published figure cited

# The papers the tables cite, by key.
PAPERS = {
    "alexnet": 'Krizhevsky et al., "ImageNet Classification with Deep '
    'Convolutional Neural Networks", NeurIPS 2012',
    "vgg": 'Simonyan & Zisserman, "Very Deep Convolutional Networks for '
    'Large-Scale Image Recognition", ICLR 2015',
    "googlenet": 'Szegedy et al., "Going Deeper with Convolutions", CVPR 2015',
    "resnet": 'He et al., "Deep Residual Learning for Image Recognition", CVPR 2016',
    "resnet_v2": 'He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016',
    "senet": 'Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018',
    "resnext": 'Xie et al., "Aggregated Residual Transformations for Deep '
    'Neural Networks", CVPR 2017',
    "efficientnet": 'Tan & Le, "EfficientNet: Rethinking Model Scaling for '
    'Convolutional Neural Networks", ICML 2019',
}


class Figure(NamedTuple):
    """A published figure: its value, the paper (a key of PAPERS), where."""

    value: str
    paper: str
    where: str | None = None


def named(name, **options):
    """How to build the reference model `name` (with `options`) for a row."""
    return functools.partial(get_model, name, **options)


KERAS_APPLICATIONS = {"layout": "keras_applications"}


@dataclasses.dataclass(frozen=True)
class Row:
    """One model of a table: how to build it, and the published figures."""

    label: str
    build: Callable[[], keras.Model]
    keras_application: str | None = None  # the keras.applications counterpart
    paper_params: tuple[Figure, ...] = ()  # () prints NONE
    paper_flops: tuple[Figure, ...] = ()


def _resnet_rows():
    flops_v1 = {
        18: (Figure("1.8 G", "resnet", "Table 1"),),
        34: (Figure("3.6 G", "resnet", "Table 1"),),
        50: (
            Figure("3.8 G", "resnet", "Table 1"),
            Figure("4.1 G", "resnext", "Table 1"),
        ),
        101: (Figure("7.6 G", "resnet", "Table 1"),),
        152: (Figure("11.3 G", "resnet", "Table 1"),),
    }
    depths = tuple(flops_v1)
    params_v1 = {d: (Figure(NOT_GIVEN, "resnet"),) for d in depths}
    params_v1[50] = (
        Figure(NOT_GIVEN, "resnet"),
        Figure("25.5 M", "resnext", "Table 1"),
    )
    v2 = (Figure(NOT_GIVEN, "resnet_v2"),)
    se_flops = {50: "3.87 G", 101: "7.60 G", 152: "11.32 G"}
    rows = [
        Row(
            f"ResNet-{d}",
            named(f"resnet{d}"),
            None,
            params_v1[d],
            flops_v1[d],
        )
        for d in depths
    ]
    rows += [
        Row(
            f'ResNet-{d}, `layout="keras_applications"`',
            named(f"resnet{d}", **KERAS_APPLICATIONS),
            f"ResNet{d}",
            params_v1[d],
            flops_v1[d],
        )
        for d in (50, 101, 152)
    ]
    rows += [
        Row(
            f"ResNet-{d} v2",
            named(f"resnet{d}v2"),
            None,
            v2,
            v2,
        )
        for d in depths
    ]
    rows += [
        Row(
            f'ResNet-{d} v2, `layout="keras_applications"`',
            named(f"resnet{d}v2", **KERAS_APPLICATIONS),
            f"ResNet{d}V2",
            v2,
            v2,
        )
        for d in (50, 101, 152)
    ]
    rows += [
        Row(
            f"SE-ResNet-{d}",
            named(f"se_resnet{d}"),
            None,
            (Figure("about 25 M + 2.5 M", "senet", "section 4"),) if d == 50 else (),
            (Figure(se_flops[d], "senet", "Table 2"),) if d in se_flops else (),
        )
        for d in depths
    ]
    rows += [
        Row(
            "ResNeXt-50 (32x4d)",
            named("resnext50_32x4d"),
            None,
            (Figure("25.0 M", "resnext", "Table 1"),),
            (Figure("4.2 G", "resnext", "Table 1"),),
        ),
        Row(
            "ResNeXt-101 (32x8d)",
            named("resnext101_32x8d"),
            None,
            (Figure("not in the paper", "resnext"),),
            (Figure("not in the paper", "resnext"),),
        ),
    ]
    return rows


def _vgg_rows():
    letters = {11: "A", 13: "B", 16: "D", 19: "E"}
    params = {11: "133 M", 13: "133 M", 16: "138 M", 19: "144 M"}
    rows = [
        Row(
            f"VGG-{d} ({letters[d]})",
            named(f"vgg{d}"),
            f"VGG{d}" if d in (16, 19) else None,
            (Figure(params[d], "vgg", "Table 2"),),
            (
                (Figure(NOT_GIVEN, "vgg"), Figure("19.6 G", "resnet", "section 3.3"))
                if d == 19
                else (Figure(NOT_GIVEN, "vgg"),)
            ),
        )
        for d in letters
    ]
    rows += [
        Row(
            "VGG-11 (A-LRN), `lrn=True`",
            named("vgg11_lrn"),
            None,
            (Figure("133 M", "vgg", "Table 2"),),
            (Figure(NOT_GIVEN, "vgg"),),
        ),
        Row(
            "VGG-16 (C), `last_1x1=True`",
            named("vgg16_1x1"),
            None,
            (Figure("134 M", "vgg", "Table 2"),),
            (Figure(NOT_GIVEN, "vgg"),),
        ),
    ]
    rows += [
        Row(
            f"VGG-{d}-BN",
            named(f"vgg{d}_bn"),
            None,
            (Figure("not in the paper", "vgg"),),
            (Figure("not in the paper", "vgg"),),
        )
        for d in letters
    ]
    return rows


def _alexnet_rows():
    return [
        Row(
            "AlexNet (`groups=2`, the paper's)",
            named("alexnet"),
            None,
            (Figure("60 M", "alexnet", "abstract"),),
            (Figure(NOT_GIVEN, "alexnet"),),
        ),
        Row("AlexNet, `groups=1`", named("alexnet_ungrouped")),
    ]


def _googlenet_rows():
    return [
        Row("GoogLeNet (BN, default)", named("googlenet")),
        Row(
            "GoogLeNet, `batch_norm=False, lrn=True` (the paper's)",
            named("googlenet_no_bn_lrn"),
            None,
            (Figure("per layer only", "googlenet", "Table 1"),),
            (Figure("1.5 G budget", "googlenet", "section 1"),),
        ),
    ]


def _cifar_resnet_rows():
    params = {20: "0.27 M", 32: "0.46 M", 44: "0.66 M", 56: "0.85 M", 110: "1.7 M"}
    return [
        Row(
            f"ResNet-{d}",
            named(f"cifar_resnet{d}"),
            None,
            (Figure(params[d], "resnet", "Table 6"),),
            (Figure(NOT_GIVEN, "resnet"),),
        )
        for d in params
    ]


def _cifar10_cnn_rows():
    return [
        Row("CIFAR-10 CNN (GAP, default)", named("cifar10_cnn")),
        Row("CIFAR-10 CNN, `flatten=True`", named("cifar10_cnn", flatten=True)),
    ]


def _efficientnet_rows():
    """keras_blocks.efficientnet's presets (`PRESETS`: "b0" ... "b7")."""
    # The paper's Table 2, B0 ... B7.
    params = ("5.3 M", "7.8 M", "9.2 M", "12 M", "19 M", "30 M", "43 M", "66 M")
    macs = ("0.39 G", "0.70 G", "1.0 G", "1.8 G", "4.2 G", "9.9 G", "19 G", "37 G")
    return [
        Row(
            f"EfficientNet-{variant.upper()}",
            # With its input normalization, as keras.applications'.
            named(f"efficientnet_{variant}", include_preprocessing=True),
            f"EfficientNet{variant.upper()}",
            (Figure(p, "efficientnet", "Table 2"),),
            (Figure(m, "efficientnet", "Table 2"),),
        )
        for (variant, p, m) in zip(efficientnet.PRESETS, params, macs, strict=True)
    ]


# Notes under each table: why our counts and the papers' differ. "{label}"
# stands for that row's MACs (or a keras.applications name for its MACs),
# "{label:trainable}" for its trainable parameters.
NOTES = {
    "resnet": [
        "The ResNet paper's FLOPs are multiply-adds (its section 3.3) of the "
        "original bottleneck, which strides in the first 1x1 convolution of a "
        "stage's first block, as keras.applications' ResNet50/101/152 and "
        '`layout="keras_applications"` here: {ResNet50} for ResNet-50 (the SENet '
        "paper measures 3.86 G, its Table 2). The paper's configuration here "
        'strides in the 3x3 convolution instead ("ResNet v1.5", as '
        "torchvision), so that block's first 1x1 convolution runs at twice "
        "the resolution: {ResNet-50} for ResNet-50, the 4.1 G of the ResNeXt "
        "paper's Table 1 and torchvision's 4.09 GFLOPS. ResNet-18 and -34 "
        "have no bottleneck, so the stride's place does not change them: "
        "{ResNet-18} and {ResNet-34}, which the paper gives as 1.8 G and "
        "3.6 G.",
        "The ResNet paper gives no parameter counts for its ImageNet models "
        "(the ResNeXt paper's 25.5 M for ResNet-50 is {ResNet-50:trainable} "
        "cut to one decimal). The trainable parameters of the paper's "
        'configuration are torchvision\'s; `layout="keras_applications"` has '
        "keras.applications' "
        "biases in every convolution and exactly its parameters.",
        "The pre-activation paper gives no FLOPs or parameters for its "
        "ImageNet models. Our v2 halves the resolution in the 3x3 "
        "convolution of a stage's first block, like our v1; keras.applications' "
        'V2 (`layout="keras_applications"`) halves it in the 3x3 convolution of '
        "a stage's last block, with a subsampling shortcut, hence its other "
        "counts: {ResNet50V2} against {ResNet-50 v2} for ResNet-50.",
        "SE-ResNet: the SENet paper's 3.87 G for SE-ResNet-50 (3.86 G for its "
        "ResNet-50) strides in the 1x1 convolution, ours in the 3x3 one, as "
        "the plain ResNets above. The SE gates add few MACs (two dense layers "
        "on the pooled channels; the pooling and the scaling are not counted) "
        "and about 2.5 M parameters to ResNet-50, as in the paper: "
        "{SE-ResNet-50:trainable} trainable against {ResNet-50:trainable}.",
        "ResNeXt: the paper's 4.2 G for ResNeXt-50 (32x4d) strides in the 3x3 "
        "convolution, as ours ({ResNeXt-50 (32x4d)}). ResNeXt-101 (32x8d) "
        "is torchvision's `resnext101_32x8d`; the ResNeXt paper has no 32x8d "
        "model (its ResNeXt-101s are 2x40d, 4x24d, 8x14d and 32x4d in its "
        "Table 3, 2x64d and 64x4d in its Table 4).",
    ],
    "vgg": [
        "The VGG paper gives parameters in millions (Table 2) and no FLOPs; "
        "the ResNet paper (section 3.3) counts 19.6 billion multiply-adds for "
        "VGG-19, {VGG-19 (E)} here. VGG-16 and VGG-19 are keras.applications' "
        "networks: the same parameters and MACs.",
        "A-LRN is A with AlexNet's local response normalization after the "
        "first convolution: no weights, and its operations are not counted, "
        "so A's counts. C is D with a 1x1 convolution as the last one of "
        "stages 3, 4 and 5: {VGG-16 (C), `last_1x1=True`} against "
        "{VGG-16 (D)}. Neither has a BN variant here: BN does the "
        "normalizing LRN was there for, and no reference implementation has "
        "a C with BN.",
        "The BN variants (not in the paper, which predates batch "
        "normalization) keep the convolutions' biases, as torchvision's "
        "`vgg*_bn`, whose trainable parameters they have. BN adds 4 numbers "
        "per channel (2 trainable) and no counted MACs.",
    ],
    "alexnet": [
        "The paper gives 60 million parameters (abstract) and no FLOPs. The "
        "counts are for a 227x227 input, the size that gives the paper's "
        "55x55 first feature maps ((227 - 11) / 4 + 1 = 55). The two-GPU "
        "grouping of conv2, conv4 and conv5 halves their MACs: "
        "{AlexNet (`groups=2`, the paper's)} against {AlexNet, `groups=1`} "
        "ungrouped.",
        "torchvision's AlexNet (0.71 GFLOPS) is another network, the one of "
        "Krizhevsky's later 'One weird trick' paper: 64, 192, 384, 256 and "
        "256 filters, no groups, 224x224 inputs. That its count is close to "
        "the paper's network's is a coincidence.",
    ],
    "googlenet": [
        "The paper designs GoogLeNet for 'a computational budget of 1.5 "
        "billion multiply-adds at inference time' (section 1) and lists "
        "parameters and operations per layer in Table 1, without a total. "
        "Both configurations here have the paper's 5x5 convolutions; the "
        "default adds BN (4 numbers per channel, 2 trainable, no counted "
        "MACs) and drops LRN (no weights, no MACs).",
        "torchvision's GoogLeNet has 3x3 convolutions in its 5x5 branches "
        "(6,624,904 trainable parameters, 1.5 GFLOPS), so it counts fewer "
        "of both.",
        "The auxiliary classifiers (training only) are not counted.",
    ],
    "cifar_resnet": [
        "The paper's Table 6 rounds the parameters to two digits: they are "
        "the trainable counts; the option-A shortcuts (subsample, then pad "
        "with zero channels) add none. The paper gives no FLOPs for its "
        "CIFAR models. The counts are for 32x32 inputs and 10 classes.",
    ],
    "cifar10_cnn": [
        "The course's network has no paper. The counts are for 32x32 inputs "
        "and 10 classes; `flatten=True` only changes the 50-unit hidden "
        "layer's input (4 x 4 x 128 features instead of 128).",
    ],
    "efficientnet": [
        "The paper's FLOPS (Table 2) are close to the multiply-adds counted "
        "here at each model's own resolution (the paper does not define "
        "them). Its parameters are ours rounded to two digits, except for "
        "B1, B5 and B7, where it has 7.8 M, 30 M and 66 M and ours round to "
        "7.9 M, 31 M and 67 M. "
        "keras.applications' models are the same networks, layer for layer: "
        "the same parameters and MACs. The named models "
        '(`get_model("efficientnet_b0")`, `keras_blocks.models.efficientnet`) '
        "leave out the input normalization unless built with "
        "`include_preprocessing=True`: 7 parameters fewer, the same MACs.",
        "B0, B2, B3 and B6 round to the paper's MACs; B1 and B7 count "
        "{EfficientNet-B1} and {EfficientNet-B7} against its 0.70 G and "
        "37 G (2% apart), B4 and B5 {EfficientNet-B4} and {EfficientNet-B5} "
        "against its 4.2 G and 9.9 G (5% and 4% more), and keras.applications' "
        "models count the same as ours. The paper does not say how it "
        "counted, so these gaps are not explained here.",
        "The squeeze-and-excitation 1x1 convolutions are counted; a "
        "depthwise convolution counts kernel height x kernel width MACs per "
        "output element.",
    ],
}

# The rows of each family, with the papers' figures, in the tables' order
# (the families of `keras_blocks.models` that have none come after).
ROWS = {
    "alexnet": _alexnet_rows,
    "vgg": _vgg_rows,
    "googlenet": _googlenet_rows,
    "resnet": _resnet_rows,
    "cifar_resnet": _cifar_resnet_rows,
    "cifar10_cnn": _cifar10_cnn_rows,
    "efficientnet": _efficientnet_rows,
}
TABLES = (*(f for f in ROWS if f in FAMILIES), *(f for f in FAMILIES if f not in ROWS))


def family_rows(family):
    """The family's rows: those of `ROWS`, or one per named model of it."""
    if family in ROWS:
        return ROWS[family]()
    return [
        Row(f"`{name}`", named(name))
        for name in list_models()
        if model_entry(name).family == family
    ]


def measure(build):
    """(parameters, trainable parameters, MACs, input shape) of a new model."""
    keras.backend.clear_session()
    model = build()
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    result = {
        "parameters": model.count_params(),
        "trainable": trainable,
        "macs": flops.count_macs(model),
        "input_shape": list(model.input_shape[1:]),
    }
    del model
    return result


def count_family(family, stored=None):
    """Measures every row of a family (and its keras.applications models).

    `stored`: the family's counts of an earlier run (from the results file),
    reused for the rows it holds instead of building the models again.
    """
    counts = []
    for row in family_rows(family):
        start = time.perf_counter()
        if stored and row.label in stored:
            counts.append(
                (
                    row,
                    stored[row.label]["keras_blocks"],
                    stored[row.label].get(row.keras_application),
                )
            )
            continue
        ours = measure(row.build)
        theirs = None
        if row.keras_application:
            application = getattr(keras.applications, row.keras_application)
            theirs = measure(functools.partial(application, weights=None))
        seconds = time.perf_counter() - start
        print(
            f"{row.label}: {ours['parameters']:,} parameters, "
            f"{ours['macs']:,} MACs ({seconds:.1f} s)",
            flush=True,
        )
        counts.append((row, ours, theirs))
    return counts


def giga(macs):
    """MACs in G (M below 0.1 G), to 3 significant digits."""
    value, unit = (macs / 1e6, "M") if macs < 1e8 else (macs / 1e9, "G")
    return f"{value:#.3g}".rstrip(".") + f" {unit}"  # 7.80, not 7.8


def markdown(family, counts):
    """The family's table, its notes and its sources, as Markdown."""
    lines = [
        "| Model | Input | Parameters | Trainable | keras.applications "
        "parameters | Paper parameters | MACs | keras.applications MACs "
        "| Paper FLOPs |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    papers = []  # the papers cited, numbered in order of appearance

    def cite(figures):
        cells = []
        for figure in figures:
            if figure.paper not in papers:
                papers.append(figure.paper)
            where = f", {figure.where}" if figure.where else ""
            cells.append(f"{figure.value} [{papers.index(figure.paper) + 1}{where}]")
        return "; ".join(cells) or NONE

    values = {}  # what the notes' placeholders stand for
    for row, ours, theirs in counts:
        lines.append(
            "| "
            + " | ".join(
                [
                    row.label,
                    _size(ours["input_shape"]),
                    f"{ours['parameters']:,}",
                    f"{ours['trainable']:,}",
                    f"{theirs['parameters']:,}" if theirs else "",
                    cite(row.paper_params),
                    giga(ours["macs"]),
                    giga(theirs["macs"]) if theirs else "",
                    cite(row.paper_flops),
                ]
            )
            + " |"
        )
        values[row.label] = giga(ours["macs"])
        values[f"{row.label}:trainable"] = f"{ours['trainable']:,}"
        if theirs:
            values[row.keras_application] = giga(theirs["macs"])

    lines.append("")
    for note in NOTES.get(family, ()):
        for key, value in values.items():
            note = note.replace("{" + key + "}", value)
        if "{" in note:
            raise ValueError(f"A placeholder of this note has no model: {note}")
        lines.append(f"- {note}")
    if any(not row.paper_params or not row.paper_flops for row, _, _ in counts):
        lines.append(f"- {NONE}: no published figure is cited for this model.")
    lines.append(
        "- Parameters: all weights, as `model.count_params()` (BN's moving "
        "statistics included); trainable: as PyTorch counts them. MACs: "
        "multiply-accumulates of the convolutions and dense layers for one "
        "image at the given input (`tools/flops.py`), which is what the "
        "papers call FLOPs."
    )
    lines.append("")
    for number, key in enumerate(papers, start=1):
        lines.append(f"[{number}] {PAPERS[key]}.  ")
    header = (
        "<!-- Generated by tools/model_tables.py; do not edit. "
        f"keras {keras.__version__}, {keras.config.backend()} backend. -->"
    )
    return "\n".join([header, "", *lines]).rstrip(" ") + "\n"


def _size(shape):
    """'224x224' for a (224, 224, 3) or (3, 224, 224) image shape."""
    spatial = shape[:2] if shape[-1] == 3 else shape[1:]
    return "x".join(str(size) for size in spatial)


def presets_markdown(counts):
    """EfficientNet's preset table: scaling, dropout, parameters, MACs."""
    lines = [
        "| Model | Width | Depth | Resolution | Dropout | Parameters | MACs |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for preset, (row, ours, _) in zip(
        efficientnet.PRESETS.values(), counts, strict=True
    ):
        lines.append(
            f"| {row.label} | {preset.width_coefficient} | "
            f"{preset.depth_coefficient} | {preset.resolution} | "
            f"{preset.dropout_rate} | {ours['parameters']:,} | "
            f"{giga(ours['macs'])} |"
        )
    header = (
        "<!-- Generated by tools/model_tables.py from "
        "keras_blocks.efficientnet.PRESETS; do not edit. -->"
    )
    return "\n".join([header, "", *lines]) + "\n"


def main(argv=None):
    args = parse_args(argv)

    args.output.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.results.read_text()) if args.results.exists() else {}
    for family in args.family or TABLES:
        counts = count_family(family, results.get(family) if args.reuse else None)
        (args.output / f"{family}_counts.md").write_text(markdown(family, counts))
        if family == "efficientnet":
            (args.output / "efficientnet_presets.md").write_text(
                presets_markdown(counts)
            )
        results[family] = {
            row.label: {
                "keras_blocks": ours,
                **({row.keras_application: theirs} if theirs else {}),
            }
            for row, ours, theirs in counts
        }
    results["_meta"] = {
        "keras": keras.__version__,
        "backend": keras.config.backend(),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
