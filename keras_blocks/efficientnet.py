"""Compound-scaled EfficientNet: one stage table, two rounding rules, one builder.

EfficientNet-B0 is a stack of MBConv stages found by architecture search. The
larger networks scale it with one coefficient `phi`: depth by `alpha ** phi`,
width by `beta ** phi` and input resolution by `gamma ** phi`, with
`alpha * beta ** 2 * gamma ** 2 ~= 2`, so that each step of `phi` roughly
doubles the FLOPs. Widths are then rounded to multiples of 8 and repeats up.

Reference: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional
Neural Networks", ICML 2019. https://arxiv.org/abs/1905.11946

Two layouts (`layout=`). The default, `"keras_applications"`, has the layer
order, padding, initializers and weight order of
`keras.applications.EfficientNetB0` ... `B7`, so their weights transfer with
`set_weights` (see `load_keras_applications_weights`). `"torchvision"` is
`torchvision.models.efficientnet_b0` ... `b7`: the same layers, with
PyTorch's symmetric padding on the strided convolutions and torchvision's
batch normalization (see `TORCHVISION_BATCH_NORM`), so torchvision's weights
load by name (`examples/efficientnet.py`'s `WEIGHTS`).
"""

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import keras
import numpy as np

from keras_blocks import _builders
from keras_blocks import _validation as check
from keras_blocks.layers import ConvBNAct, MBConvBlock, Normalization
from keras_blocks.layers.image_preprocessing import IMAGENET_MEAN, IMAGENET_STDDEV
from keras_blocks.layers.mb_conv_block import CONV_INITIALIZER

__all__ = [
    "B0_BLOCKS",
    "BLOCK_KINDS",
    "LAYOUTS",
    "PRESETS",
    "TORCHVISION_BATCH_NORM",
    "EfficientNet",
    "EfficientNetB0",
    "EfficientNetB1",
    "EfficientNetB2",
    "EfficientNetB3",
    "EfficientNetB4",
    "EfficientNetB5",
    "EfficientNetB6",
    "EfficientNetB7",
    "Preset",
    "Scaling",
    "Stage",
    "compound_scaling",
    "load_keras_applications_weights",
    "round_filters",
    "round_repeats",
]

BLOCK_KINDS = ("mbconv", "fused_mbconv")
"""The values of `Stage.block`: MBConv, or EfficientNetV2's Fused-MBConv."""
BASE_RESOLUTION = 224
LAYOUTS = ("keras_applications", "torchvision")
"""The values of `EfficientNet(layout=...)`: whose network the model is laid
out as, and so whose weights it loads."""
# The classifier's initializer in the reference implementation.
DENSE_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"},
}
# ImageNet's per-channel statistics of pixels scaled to [0, 1] (RGB).


@dataclasses.dataclass(frozen=True)
class Stage:
    """One row of a stage table: `repeats` blocks of one kind.

    The first block of a stage has its `strides` and goes from `filters_in` to
    `filters_out` channels; the others keep the resolution and the width.
    Filter counts and repeats are those of B0, before scaling.

    Args:
        block: str. `"mbconv"` or `"fused_mbconv"`.
        repeats: int. Number of blocks.
        kernel_size: int. Kernel of the depthwise (or fused) convolution.
        strides: int. Stride of the stage's first block.
        expand_ratio: int. Channel expansion of the blocks.
        filters_in: int. Input channels (the previous stage's `filters_out`).
        filters_out: int. Output channels.
        se_ratio: float or None. Squeeze-and-excitation ratio, or None.

    Raises:
        ValueError: when a field is invalid.

    Examples:
        >>> from keras_blocks.efficientnet import B0_BLOCKS, Stage
        >>> B0_BLOCKS[1]  # doctest: +NORMALIZE_WHITESPACE
        Stage(block='mbconv', repeats=2, kernel_size=3, strides=2,
              expand_ratio=6, filters_in=16, filters_out=24, se_ratio=0.25)
        >>> Stage("fused_mbconv", 2, 3, 2, 4, 24, 48, None).block
        'fused_mbconv'
        >>> Stage("mbconv", 0, 3, 1, 6, 16, 24, 0.25)
        Traceback (most recent call last):
        ...
        ValueError: Invalid value for argument `repeats`. ... Received: repeats=0
    """

    block: str
    repeats: int
    kernel_size: int
    strides: int
    expand_ratio: int
    filters_in: int
    filters_out: int
    se_ratio: float | None

    def __post_init__(self):
        checked = {
            "block": check.one_of("block", self.block, BLOCK_KINDS),
            "se_ratio": check.optional(check.fraction, "se_ratio", self.se_ratio),
        }
        for field in (
            "repeats",
            "kernel_size",
            "strides",
            "expand_ratio",
            "filters_in",
            "filters_out",
        ):
            checked[field] = check.positive_int(field, getattr(self, field))
        for field, value in checked.items():
            object.__setattr__(self, field, value)  # normalized plain types


# EfficientNet-B0 (the paper's Table 1) without the stem and the head.
# Resolutions are those of a 224x224 input.
#     block    repeats kernel stride expand in  out  se
B0_BLOCKS = (
    Stage("mbconv", 1, 3, 1, 1, 32, 16, 0.25),  # 112x112
    Stage("mbconv", 2, 3, 2, 6, 16, 24, 0.25),  # 56x56
    Stage("mbconv", 2, 5, 2, 6, 24, 40, 0.25),  # 28x28
    Stage("mbconv", 3, 3, 2, 6, 40, 80, 0.25),  # 14x14
    Stage("mbconv", 3, 5, 1, 6, 80, 112, 0.25),  # 14x14
    Stage("mbconv", 4, 5, 2, 6, 112, 192, 0.25),  # 7x7
    Stage("mbconv", 1, 3, 1, 6, 192, 320, 0.25),  # 7x7
)
"""EfficientNet-B0's seven MBConv stages (the paper's Table 1), between the stem
and the head, as `Stage` rows; every variant scales this table."""


class Scaling(NamedTuple):
    """Width and depth multipliers and the input resolution of a network.

    Examples:
        >>> from keras_blocks.efficientnet import Scaling, compound_scaling
        >>> compound_scaling(1).resolution
        258
        >>> Scaling(1.0, 1.0, 224)._asdict()
        {'width_coefficient': 1.0, 'depth_coefficient': 1.0, 'resolution': 224}
    """

    width_coefficient: float
    depth_coefficient: float
    resolution: int


class Preset(NamedTuple):
    """An official variant: its scaling and its classifier's dropout rate.

    Examples:
        >>> from keras_blocks.efficientnet import PRESETS
        >>> PRESETS["b3"]  # doctest: +NORMALIZE_WHITESPACE
        Preset(width_coefficient=1.2, depth_coefficient=1.4, resolution=300,
               dropout_rate=0.3)
    """

    width_coefficient: float
    depth_coefficient: float
    resolution: int
    dropout_rate: float


# The official B0-B7. The paper rounded these away from the pure compound
# formula (B1 is phi=1 in spirit, but not alpha, beta, gamma to the 1st).
# Parameter counts are for 1000 classes, equal to keras.applications'.
PRESETS = {
    "b0": Preset(1.0, 1.0, 224, 0.2),  # 5,330,571
    "b1": Preset(1.0, 1.1, 240, 0.2),  # 7,856,239
    "b2": Preset(1.1, 1.2, 260, 0.3),  # 9,177,569
    "b3": Preset(1.2, 1.4, 300, 0.3),  # 12,320,535
    "b4": Preset(1.4, 1.8, 380, 0.4),  # 19,466,823
    "b5": Preset(1.6, 2.2, 456, 0.4),  # 30,562,527
    "b6": Preset(1.8, 2.6, 528, 0.5),  # 43,265,143
    "b7": Preset(2.0, 3.1, 600, 0.5),  # 66,658,687
}
"""The official B0-B7 (`"b0"` ... `"b7"`), as `EfficientNetB0` ... `B7` build
them. The paper rounded these away from the pure compound rule."""

# Keras' (momentum, epsilon) of torchvision's batch normalization (Keras'
# momentum is 1 - PyTorch's). Its B0-B4 weights come from timm and use
# PyTorch's defaults; its B5-B7 from lukemelas' port of the TensorFlow
# checkpoints, with TensorFlow's. keras.applications uses (0.99, 1e-3) for all.
TORCHVISION_BATCH_NORM = {
    "b0": (0.9, 1e-5),
    "b1": (0.9, 1e-5),
    "b2": (0.9, 1e-5),
    "b3": (0.9, 1e-5),
    "b4": (0.9, 1e-5),
    "b5": (0.99, 1e-3),
    "b6": (0.99, 1e-3),
    "b7": (0.99, 1e-3),
}
"""Batch normalization `(bn_momentum, bn_epsilon)` of `EfficientNetB0` ...
`B7` with `layout="torchvision"`, as torchvision's `efficientnet_b0` ... `b7`
(`EfficientNet(layout="torchvision")` defaults to B0's)."""


def round_filters(filters: int, width_coefficient: float, divisor: int = 8) -> int:
    """Scales a channel count by `width_coefficient`, rounded as the reference.

    The scaled count is rounded to the nearest multiple of `divisor` (at least
    `divisor`), and raised by one more `divisor` if rounding lost more than
    10% of it.

    Args:
        filters: int. Channel count of the B0 network.
        width_coefficient: float. Width multiplier, > 0.
        divisor: int. The result is a multiple of it.

    Returns:
        int. The scaled channel count.

    Raises:
        ValueError: on a non-positive or non-numeric argument.

    Examples:
        >>> from keras_blocks.efficientnet import round_filters
        >>> round_filters(32, 1.1), round_filters(1280, 2.0), round_filters(16, 0.1)
        (32, 2560, 8)
    """
    filters = check.positive_int("filters", filters)
    width_coefficient = check.positive_float("width_coefficient", width_coefficient)
    divisor = check.positive_int("divisor", divisor)
    scaled = filters * width_coefficient
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:  # never lose more than 10%
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth_coefficient: float) -> int:
    """Scales a stage's block count by `depth_coefficient`, rounded up.

    Args:
        repeats: int. Block count of the B0 stage.
        depth_coefficient: float. Depth multiplier, > 0.

    Returns:
        int. `ceil(depth_coefficient * repeats)`.

    Raises:
        ValueError: on a non-positive or non-numeric argument.

    Examples:
        >>> from keras_blocks.efficientnet import round_repeats
        >>> round_repeats(4, 3.1), round_repeats(1, 0.1)
        (13, 1)
    """
    repeats = check.positive_int("repeats", repeats)
    depth_coefficient = check.positive_float("depth_coefficient", depth_coefficient)
    return math.ceil(depth_coefficient * repeats)


def compound_scaling(
    phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15
) -> Scaling:
    """The paper's compound scaling rule for a coefficient `phi`.

    depth = `alpha ** phi`, width = `beta ** phi`, resolution =
    `224 * gamma ** phi` rounded to an integer. The defaults are the paper's
    grid-searched constants for B0.

    Args:
        phi: float. Compound coefficient, >= 0 (0 is B0).
        alpha: float. Depth base, > 0.
        beta: float. Width base, > 0.
        gamma: float. Resolution base, > 0.

    Returns:
        `Scaling(width_coefficient, depth_coefficient, resolution)`.

    Raises:
        ValueError: on a negative `phi` or a non-positive base.

    Examples:
        >>> from keras_blocks.efficientnet import compound_scaling
        >>> compound_scaling(0)
        Scaling(width_coefficient=1.0, depth_coefficient=1.0, resolution=224)
        >>> s = compound_scaling(2)
        >>> round(s.width_coefficient, 4), round(s.depth_coefficient, 4), s.resolution
        (1.21, 1.44, 296)
    """
    phi = check.non_negative_float("phi", phi)
    alpha = check.positive_float("alpha", alpha)
    beta = check.positive_float("beta", beta)
    gamma = check.positive_float("gamma", gamma)
    return Scaling(
        width_coefficient=beta**phi,
        depth_coefficient=alpha**phi,
        resolution=round(BASE_RESOLUTION * gamma**phi),
    )


def _stage_table(blocks):
    """Validates a stage table: `Stage`s, tuples or dicts of its fields."""
    if isinstance(blocks, str | bytes | Mapping) or not isinstance(blocks, Sequence):
        raise ValueError(
            "Invalid value for argument `blocks`. Expected a sequence of stage "
            f"rows (Stage, tuple or dict). Received: blocks={blocks!r}"
        )
    if not blocks:
        raise ValueError(
            "Invalid value for argument `blocks`. Expected at least one stage "
            f"row. Received: blocks={blocks!r}"
        )
    fields = tuple(field.name for field in dataclasses.fields(Stage))
    stages = []
    for index, row in enumerate(blocks):
        try:
            if isinstance(row, Stage):
                stage = row
            elif isinstance(row, Mapping):
                stage = Stage(**row)
            elif isinstance(row, Sequence) and not isinstance(row, str):
                stage = Stage(*row)
            else:
                raise TypeError("not a Stage, tuple or dict")
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"Invalid value for argument `blocks`. Row {index} is malformed "
                f"({error}); expected a Stage, or a tuple or dict of {fields}. "
                f"Received: blocks[{index}]={row!r}"
            ) from error
        if stages and stage.filters_in != stages[-1].filters_out:
            raise ValueError(
                f"Invalid value for argument `blocks`. Row {index} has "
                f"filters_in={stage.filters_in}, but row {index - 1} outputs "
                f"filters_out={stages[-1].filters_out}. Received: "
                f"blocks[{index}]={row!r}"
            )
        stages.append(stage)
    return tuple(stages)


def _scaling(phi, width_coefficient, depth_coefficient, resolution):
    """The validated `Scaling`: from `phi`, or explicit values with defaults."""
    given = {
        "width_coefficient": width_coefficient,
        "depth_coefficient": depth_coefficient,
        "resolution": resolution,
    }
    if phi is not None:
        named = [key for key, value in given.items() if value is not None]
        if named:
            raise ValueError(
                "Invalid value for argument `phi`. Expected None when "
                f"`{named[0]}` is given: phi sets the width, depth and "
                f"resolution together. Received: phi={phi!r}"
            )
        return compound_scaling(phi)
    defaults = Scaling(1.0, 1.0, BASE_RESOLUTION)._asdict()
    values = {
        key: defaults[key] if value is None else value for key, value in given.items()
    }
    return Scaling(
        check.positive_float("width_coefficient", values["width_coefficient"]),
        check.positive_float("depth_coefficient", values["depth_coefficient"]),
        check.positive_int("resolution", values["resolution"]),
    )


def EfficientNet(
    phi: float | None = None,
    *,
    width_coefficient: float | None = None,
    depth_coefficient: float | None = None,
    resolution: int | None = None,
    include_top: bool = True,
    classes: int = 1000,
    input_shape: tuple | None = None,
    pooling: str | None = None,
    classifier_activation: str | Callable | None = "softmax",
    include_preprocessing: bool = True,
    input_normalization: tuple | None = None,
    dropout_rate: float = 0.2,
    drop_connect_rate: float = 0.2,
    blocks: Sequence = B0_BLOCKS,
    depth_divisor: int = 8,
    top_filters: int = 1280,
    activation: str | Callable = "swish",
    layout: str = "keras_applications",
    bn_momentum: float | None = None,
    bn_epsilon: float | None = None,
    bn_synchronized: bool = False,
    data_format: str | None = None,
    name: str = "efficientnet",
) -> keras.Model:
    """Builds an EfficientNet scaled by `phi`, or by explicit coefficients.

    The network: [preprocessing], a 3x3 stride-2 stem (`ConvBNAct`), the
    stages of `blocks` (`MBConvBlock`s), a 1x1 head convolution to
    `top_filters` channels, then the classifier or the pooling. Every width
    goes through `round_filters` and every stage's repeats through
    `round_repeats`; the first stage's `filters_in` is the stem's width.

    Pass `phi` (any number >= 0, such as 0.5 or 9) to scale by
    `compound_scaling(phi)`, or `width_coefficient`, `depth_coefficient` and
    `resolution` directly (each defaults to B0's); not both. The official
    variants are `EfficientNetB0` ... `EfficientNetB7`, whose coefficients the
    paper rounded away from the formula.

    Reference: Tan & Le, "EfficientNet: Rethinking Model Scaling for
    Convolutional Neural Networks", ICML 2019.

    Args:
        phi: float or None. Compound scaling coefficient, >= 0.
        width_coefficient: float or None. Width multiplier (default 1.0).
        depth_coefficient: float or None. Depth multiplier (default 1.0).
        resolution: int or None. Input height and width used when
            `input_shape` is None (default 224); at least the network's total
            stride (32 for B0's table).
        include_top: bool. Whether to end with global average pooling,
            dropout and the `classes`-way classifier.
        classes: int. Number of classes of the classifier.
        input_shape: tuple or None. Shape of one image, in `data_format`
            order; spatial sizes may be None. Default: `resolution` square
            with 3 channels.
        pooling: str or None. Without the top: `None` (the 4D feature map),
            `"avg"` or `"max"` (global pooling to a vector).
        classifier_activation: str, callable or None. Activation of the
            classifier; `None` returns logits.
        include_preprocessing: bool. Whether the model rescales pixels from
            [0, 255] and normalizes them (`Rescaling` then `Normalization`, as
            keras.applications). The normalization starts at ImageNet's
            statistics for 3 channels (identity otherwise); `adapt` it to
            other data.
        input_normalization: pair or None. With `include_preprocessing`, a
            fixed `(mean, stddev)` in pixel values, each a number or one per
            channel, that the model subtracts and divides by instead: one
            `keras.layers.Normalization` of constants, without weights, as
            keras.applications' EfficientNetV2 preprocesses (`(128, 128)`
            maps [0, 255] to [-1, 1]). None: the rescaling and the
            adaptable normalization above.
        dropout_rate: float. Dropout before the classifier, in [0, 1).
        drop_connect_rate: float. Stochastic depth rate, in [0, 1). Block `i`
            of `n` drops its branch with rate `drop_connect_rate * i / n`:
            from 0, linearly, never reaching 1.
        blocks: sequence of `Stage` (or tuples or dicts of its fields). The
            stage table of the unscaled network; default B0's.
        depth_divisor: int. Widths are rounded to multiples of it.
        top_filters: int. Width of the head convolution before scaling.
        activation: str or callable. Activation of every block.
        layout: str. `"keras_applications"` (TensorFlow's `"same"` padding,
            BN momentum 0.99 and epsilon 1e-3: keras.applications' weights
            load) or `"torchvision"` (symmetric `k // 2` padding on the
            strided convolutions, BN momentum 0.9 and epsilon 1e-5 unless
            given: torchvision's weights load). Both have the same layers,
            parameters, squeeze widths, stochastic depth and input
            preprocessing; with `include_preprocessing=False` a
            torchvision-layout model takes what torchvision's network takes,
            images scaled to [0, 1] and normalized with `IMAGENET_MEAN` and
            `IMAGENET_STDDEV`.
        bn_momentum: float or None. Momentum of every batch normalization's
            moving statistics; None: the layout's.
        bn_epsilon: float or None. Epsilon of every batch normalization;
            None: the layout's.
        bn_synchronized: bool. Synchronized batch normalization over the
            replicas of a `tf.distribute` strategy (TensorFlow); see
            `keras_blocks.layers.ConvBNAct`.
        data_format: str or None. `"channels_last"` or `"channels_first"`;
            `None` uses `keras.config.image_data_format()`.
        name: str. Name of the model.

    Returns:
        A `keras.Model`.

    Raises:
        ValueError: on an invalid argument: an unknown `layout`, a negative
            `phi` or coefficient,
            `phi` together with explicit coefficients, a resolution or input
            size smaller than the total stride, an unknown block kind or a
            malformed row of `blocks` (the message names the row).

    Examples:
        >>> from keras_blocks.efficientnet import EfficientNet
        >>> model = EfficientNet(phi=0.5, classes=10, input_shape=(64, 64, 3))
        >>> model.output.shape
        (None, 10)
        >>> model.count_params()
        7174439
        >>> torch_layout = EfficientNet(phi=0.5, classes=10, input_shape=(64, 64, 3),
        ...                             layout="torchvision")
        >>> torch_layout.count_params()
        7174439
    """
    width, depth, resolution = _scaling(
        phi, width_coefficient, depth_coefficient, resolution
    )
    include_top = check.boolean("include_top", include_top)
    classes = check.positive_int("classes", classes)
    pooling = check.optional(check.one_of, "pooling", pooling, ("avg", "max"))
    classifier_activation = check.activation(
        "classifier_activation", classifier_activation
    )
    include_preprocessing = check.boolean(
        "include_preprocessing", include_preprocessing
    )
    input_normalization = check.optional(
        _input_normalization, "input_normalization", input_normalization
    )
    dropout_rate = check.rate("dropout_rate", dropout_rate)
    drop_connect_rate = check.rate("drop_connect_rate", drop_connect_rate)
    stages = _stage_table(blocks)
    depth_divisor = check.positive_int("depth_divisor", depth_divisor)
    top_filters = check.positive_int("top_filters", top_filters)
    layout = check.one_of("layout", layout, LAYOUTS)
    torchvision = layout == "torchvision"
    default_bn = TORCHVISION_BATCH_NORM["b0"] if torchvision else (0.99, 1e-3)
    bn_momentum = default_bn[0] if bn_momentum is None else bn_momentum
    bn_momentum = check.rate("bn_momentum", bn_momentum)
    bn_epsilon = default_bn[1] if bn_epsilon is None else bn_epsilon
    bn_epsilon = check.positive_float("bn_epsilon", bn_epsilon)
    bn_synchronized = check.boolean("bn_synchronized", bn_synchronized)
    data_format = check.data_format(data_format)

    total_stride = 2 * math.prod(stage.strides for stage in stages)
    if resolution < total_stride:
        raise ValueError(
            "Invalid value for argument `resolution`. Expected at least the "
            f"network's total stride ({total_stride}). Received: "
            f"resolution={resolution}"
        )
    input_shape = _builders.input_shape(
        input_shape,
        resolution,
        total_stride,
        data_format,
        "Expected {layout} with known channels, and heights and widths that are "
        f"None or at least the network's total stride ({total_stride}).",
    )
    channel_axis = check.channel_axis(data_format)

    # Every unit as in the reference: swish, the layout's BN and padding,
    # fan-out He init (torchvision's differs only in not truncating the
    # normal); the stem, the blocks and the head: every BN of the network.
    units = dict(
        activation=activation,
        padding="symmetric" if torchvision else "same",
        bn_momentum=bn_momentum,
        bn_epsilon=bn_epsilon,
        bn_synchronized=bn_synchronized,
        kernel_initializer=CONV_INITIALIZER,
        data_format=data_format,
    )

    inputs = keras.Input(input_shape)
    x = inputs
    if include_preprocessing and input_normalization is not None:
        channels = input_shape[channel_axis]
        if any(np.size(v) not in (1, channels) for v in input_normalization):
            raise ValueError(
                "Invalid value for argument `input_normalization`. Expected a "
                f"number or {channels} values (one per channel) for the mean "
                "and for the stddev. Received: "
                f"input_normalization={input_normalization!r}"
            )
        mean, stddev = (
            np.broadcast_to(np.asarray(values, "float32"), (channels,))
            for values in input_normalization
        )
        x = keras.layers.Normalization(
            axis=channel_axis,
            mean=mean,
            variance=np.square(stddev),
            name="normalization",
        )(x)
    elif include_preprocessing:
        x = keras.layers.Rescaling(1.0 / 255.0, name="rescaling")(x)
        normalization = Normalization(axis=channel_axis, name="normalization")
        x = normalization(x)
        if input_shape[channel_axis] == 3:
            normalization.set_weights(
                [np.array(IMAGENET_MEAN), np.square(IMAGENET_STDDEV), np.array(0)]
            )
    stem_filters = round_filters(stages[0].filters_in, width, depth_divisor)
    x = ConvBNAct(stem_filters, 3, strides=2, name="stem", **units)(x)

    total_blocks = sum(round_repeats(stage.repeats, depth) for stage in stages)
    index = 0
    for stage_index, stage in enumerate(stages, start=1):
        filters = round_filters(stage.filters_out, width, depth_divisor)
        for repeat in range(round_repeats(stage.repeats, depth)):
            x = MBConvBlock(
                filters,
                stage.kernel_size,
                strides=stage.strides if repeat == 0 else 1,
                expand_ratio=stage.expand_ratio,
                se_ratio=stage.se_ratio,
                fused=stage.block == "fused_mbconv",
                drop_path_rate=drop_connect_rate * index / total_blocks,
                name=f"block{stage_index}{_block_letter(repeat)}",
                **units,
            )(x)
            index += 1

    top = round_filters(top_filters, width, depth_divisor)
    x = ConvBNAct(top, 1, name="top", **units)(x)
    x = _builders.classifier_head(
        x,
        include_top,
        classes,
        pooling,
        classifier_activation,
        dropout_rate=dropout_rate,
        dropout_name="top_dropout",
        kernel_initializer=DENSE_INITIALIZER,
        data_format=data_format,
    )
    return keras.Model(inputs, x, name=name)


def _input_normalization(name, value):
    """`(mean, stddev)`: numbers or equal-length sequences, stddevs > 0."""
    try:
        mean, stddev = (np.asarray(values, "float64") for values in value)
        valid = (
            mean.ndim <= 1
            and stddev.ndim <= 1
            and np.isfinite(mean).all()
            and np.isfinite(stddev).all()
            and (stddev > 0).all()
        )
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a pair (mean, "
            "stddev) of finite numbers or per-channel sequences, stddev > 0. "
            f"Received: {name}={value!r}"
        )
    return tuple(
        float(v) if np.ndim(v) == 0 else tuple(float(x) for x in v) for v in value
    )


def _block_letter(repeat):
    """'a', 'b', ... as keras.applications names blocks; numbers past 'z'."""
    return chr(ord("a") + repeat) if repeat < 26 else f"_{repeat}"


def _preset(variant, kwargs):
    preset = PRESETS[variant]
    kwargs.setdefault("dropout_rate", preset.dropout_rate)
    if kwargs.get("layout") == "torchvision":
        bn_momentum, bn_epsilon = TORCHVISION_BATCH_NORM[variant]
        kwargs.setdefault("bn_momentum", bn_momentum)
        kwargs.setdefault("bn_epsilon", bn_epsilon)
    kwargs.setdefault("name", f"efficientnet{variant}")
    return EfficientNet(
        width_coefficient=preset.width_coefficient,
        depth_coefficient=preset.depth_coefficient,
        resolution=preset.resolution,
        **kwargs,
    )


def EfficientNetB0(**kwargs: Any) -> keras.Model:
    """EfficientNet-B0 (224x224, 5.3M parameters); arguments as `EfficientNet`.

    Examples:
        >>> from keras_blocks.efficientnet import EfficientNetB0
        >>> EfficientNetB0().count_params()
        5330571
    """
    return _preset("b0", kwargs)


def EfficientNetB1(**kwargs: Any) -> keras.Model:
    """EfficientNet-B1 (240x240, 7.9M parameters); arguments as `EfficientNet`."""
    return _preset("b1", kwargs)


def EfficientNetB2(**kwargs: Any) -> keras.Model:
    """EfficientNet-B2 (260x260, 9.2M parameters); arguments as `EfficientNet`."""
    return _preset("b2", kwargs)


def EfficientNetB3(**kwargs: Any) -> keras.Model:
    """EfficientNet-B3 (300x300, 12.3M parameters); arguments as `EfficientNet`."""
    return _preset("b3", kwargs)


def EfficientNetB4(**kwargs: Any) -> keras.Model:
    """EfficientNet-B4 (380x380, 19.5M parameters); arguments as `EfficientNet`."""
    return _preset("b4", kwargs)


def EfficientNetB5(**kwargs: Any) -> keras.Model:
    """EfficientNet-B5 (456x456, 30.6M parameters); arguments as `EfficientNet`."""
    return _preset("b5", kwargs)


def EfficientNetB6(**kwargs: Any) -> keras.Model:
    """EfficientNet-B6 (528x528, 43.3M parameters); arguments as `EfficientNet`."""
    return _preset("b6", kwargs)


def EfficientNetB7(**kwargs: Any) -> keras.Model:
    """EfficientNet-B7 (600x600, 66.7M parameters); arguments as `EfficientNet`."""
    return _preset("b7", kwargs)


def load_keras_applications_weights(model: keras.Model, source: keras.Model) -> None:
    """Copies a `keras.applications` EfficientNet's weights into `model`.

    `model.set_weights(source.get_weights())` is enough for a source built with
    `weights=None` or from a weights file. A source built with
    `weights="imagenet"` normalizes its input in two steps: its
    `Normalization` layer holds the standard deviations in place of the
    variances, and a `Rescaling` layer after it divides once more (a
    workaround for tensorflow/tensorflow#49930). This function folds that
    rescaling into the variance, so `model` gives the same predictions with
    one `Normalization`; a source built from the ImageNet file's path (which
    keras.applications gives no such rescaling) is recognized by those
    standard deviations in place of its variances, and gets the same. It
    also drops the source's normalization weights when `model` was built
    with `include_preprocessing=False`.

    Args:
        model: keras.Model. Built by this module with the source's variant,
            `include_top` and `classes`.
        source: keras.Model. A `keras.applications.EfficientNetB0` ... `B7`.

    Raises:
        ValueError: when the weights do not fit `model` (another variant,
            `include_top` or number of classes).

    Examples:
        >>> import keras
        >>> from keras_blocks.efficientnet import (
        ...     EfficientNetB0, load_keras_applications_weights)
        >>> source = keras.applications.EfficientNetB0(  # weights="imagenet"
        ...     weights=None, include_top=False, input_shape=(32, 32, 3))
        >>> model = EfficientNetB0(include_top=False, input_shape=(32, 32, 3))
        >>> load_keras_applications_weights(model, source)
        >>> bool((model.weights[-1].numpy() == source.weights[-1].numpy()).all())
        True
        >>> load_keras_applications_weights(EfficientNetB0(), source)
        Traceback (most recent call last):
        ...
        ValueError: The weights of 'efficientnetb0' do not fit 'efficientnetb0': ...
    """
    weights = source.get_weights()
    layers = source.layers
    normalizations = [
        i for i, layer in enumerate(layers) if type(layer).__name__ == "Normalization"
    ]
    if normalizations:
        position = normalizations[0]
        after = layers[position + 1] if position + 1 < len(layers) else None
        first = sum(len(layer.weights) for layer in layers[:position])
        if isinstance(after, keras.layers.Rescaling):
            # (x - mean) / sqrt(v) * s == (x - mean) / sqrt(v / s ** 2)
            scale = np.asarray(after.scale, dtype="float32")
            weights[first + 1] = weights[first + 1] / np.square(scale)
        elif np.allclose(weights[first + 1], IMAGENET_STDDEV, rtol=0, atol=1e-6):
            # The ImageNet file loaded by its path (not `weights="imagenet"`,
            # which adds the Rescaling above): its "variance" holds the
            # standard deviations, which keras.applications then divides by
            # once more. The variance they stand for is their square.
            weights[first + 1] = np.square(weights[first + 1])
        if not any(isinstance(layer, Normalization) for layer in model.layers):
            del weights[first : first + len(layers[position].weights)]
    expected = [tuple(w.shape) for w in model.weights]
    received = [tuple(np.shape(w)) for w in weights]
    if expected != received:
        raise ValueError(
            f"The weights of '{source.name}' do not fit '{model.name}': "
            f"{len(received)} arrays against {len(expected)}, first mismatch at "
            f"index {_first_mismatch(expected, received)}. Build the model with "
            "the same variant, include_top and classes."
        )
    model.set_weights(weights)


def _first_mismatch(expected, received):
    for index, (a, b) in enumerate(zip(expected, received, strict=False)):
        if a != b:
            return index
    return min(len(expected), len(received))
