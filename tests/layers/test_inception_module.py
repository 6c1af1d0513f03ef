import re

import keras
import numpy as np
import pytest

from keras_blocks.layers import InceptionModule
from tests.layers.layer_checks import (
    ARGUMENT_CHECKS,
    INPUT_SHAPE_CHECKS,
    WEIGHT_SHAPES,
    check_layer,
    random_inputs,
    run_reference,
    to_numpy,
)
from tests.layers.residual_reference import randomize_weights

SMALL = (4, 3, 5, 2, 3, 2)  # 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj


@pytest.mark.slow
@pytest.mark.parametrize(
    "data_format, naive",
    [
        ("channels_last", False),
        ("channels_last", True),
        # The naive module in channels_first adds no code: its branches are
        # those of the first case, less the reductions and projection, and the
        # data format reaches every unit, the pooling and the concatenation
        # here.
        ("channels_first", False),
    ],
)
def test_layer(naive, data_format, tmp_path):
    f1, r3, f3, r5, f5, fp = SMALL
    if naive:
        r3 = r5 = fp = None
    channels = 4 + 5 + 3 + (6 if naive else 2)
    if data_format == "channels_last":
        shape, out = (2, 5, 5, 6), (2, 5, 5, channels)
    else:
        shape, out = (2, 6, 5, 5), (2, channels, 5, 5)
    kwargs = dict(
        filters_1x1=f1,
        filters_3x3_reduce=r3,
        filters_3x3=f3,
        filters_5x5_reduce=r5,
        filters_5x5=f5,
        filters_pool_proj=fp,
        naive=naive,
        data_format=data_format,
        # torchvision's 3x3 in one, a non-square kernel in the other
        kernel_size_5x5=(3, 5) if naive else 3,
    )
    layer = check_layer(InceptionModule, kwargs, shape, tmp_path, out)
    assert layer.get_config()["kernel_size_5x5"] == ((3, 5) if naive else (3, 3))


def plain_keras_inception(input_shape, filters, naive, data_format, kernel_5x5=5):
    axis = -1 if data_format == "channels_last" else 1
    f1, r3, f3, r5, f5, fp = filters
    units = []  # (conv, bn) in branch order

    def unit(x, n, k):
        conv = keras.layers.Conv2D(
            n, k, padding="same", use_bias=False, data_format=data_format
        )
        bn = keras.layers.BatchNormalization(axis=axis, epsilon=1e-5)
        units.append((conv, bn))
        return keras.layers.Activation("relu")(bn(conv(x)))

    inputs = keras.Input(input_shape[1:])
    pool = keras.layers.MaxPooling2D(3, 1, padding="same", data_format=data_format)(
        inputs
    )
    if naive:
        branches = [
            unit(inputs, f1, 1),
            unit(inputs, f3, 3),
            unit(inputs, f5, kernel_5x5),
            pool,
        ]
    else:
        branches = [
            unit(inputs, f1, 1),
            unit(unit(inputs, r3, 1), f3, 3),
            unit(unit(inputs, r5, 1), f5, kernel_5x5),
            unit(pool, fp, 1),
        ]
    return keras.Model(inputs, keras.layers.Concatenate(axis=axis)(branches)), units


@pytest.mark.slow
@pytest.mark.parametrize(
    "data_format, naive, kernel_5x5",
    [
        ("channels_last", False, 5),
        ("channels_last", True, 5),
        ("channels_first", False, 5),
        ("channels_first", True, 5),
        # torchvision's GoogLeNet. One case: kernel_size_5x5 reaches the one
        # convolution both modules and both data formats build from it.
        ("channels_last", False, 3),
    ],
)
def test_matches_plain_keras(naive, data_format, kernel_5x5):
    shape = (2, 6, 6, 5) if data_format == "channels_last" else (2, 5, 6, 6)
    f1, r3, f3, r5, f5, fp = SMALL
    module = InceptionModule(
        f1,
        None if naive else r3,
        f3,
        None if naive else r5,
        f5,
        None if naive else fp,
        naive=naive,
        data_format=data_format,
        **({} if kernel_5x5 == 5 else {"kernel_size_5x5": kernel_5x5}),
    )
    module.build(shape)
    reference, units = plain_keras_inception(
        shape, SMALL, naive, data_format, kernel_5x5
    )
    randomize_weights(reference)
    # Unit by unit, in branch order: the module's documented weight order.
    module.set_weights(
        [w for conv, bn in units for w in conv.get_weights() + bn.get_weights()]
    )
    x = random_inputs(shape)
    np.testing.assert_allclose(
        to_numpy(module(x, training=False)),
        run_reference(reference, x),
        atol=1e-5,
        rtol=1e-5,
    )


@pytest.mark.backend_independent(reason="compute_output_shape: Python arithmetic")
def test_googlenet_channels():
    inception_3a = InceptionModule(64, 96, 128, 16, 32, 32)
    inception_3b = InceptionModule(128, 128, 192, 32, 96, 64)
    assert inception_3a.compute_output_shape((None, 28, 28, 192)) == (None, 28, 28, 256)
    assert inception_3b.compute_output_shape((None, 28, 28, 256)) == (None, 28, 28, 480)


@WEIGHT_SHAPES
def test_paper_parameter_count_without_batch_norm():
    # GoogLeNet's inception (3a) as in the 2014 paper: conv weights and biases.
    module = InceptionModule(64, 96, 128, 16, 32, 32, batch_norm=False)
    module.build((None, 28, 28, 192))
    c = 192
    expected = (
        (c * 64 + 64)
        + (c * 96 + 96)
        + (9 * 96 * 128 + 128)
        + (c * 16 + 16)
        + (25 * 16 * 32 + 32)
        + (c * 32 + 32)
    )
    assert module.count_params() == expected == 163_696


@ARGUMENT_CHECKS
@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (
            (4, 3, 5, 2, 3, 2),
            dict(naive=True),
            "Invalid value for argument `filters_3x3_reduce`. The naive module has no 1x1 reductions or projection: expected None with naive=True. Received: filters_3x3_reduce=3",
        ),
        ((4, None, 5, None, 3, 2), dict(naive=True), "Received: filters_pool_proj=2"),
        # The signature allows None: the message says where (issue 16).
        (
            (4, 3, 5, None, 3, 2),
            dict(),
            "Invalid value for argument `filters_5x5_reduce`. Expected a strictly positive integer (None only with naive=True). Received: filters_5x5_reduce=None",
        ),
        (
            (4, 0, 5, 2, 3, 2),
            dict(),
            "Invalid value for argument `filters_3x3_reduce`. Expected a strictly positive integer (None only with naive=True). Received: filters_3x3_reduce=0",
        ),
        (
            (4, 3, 5, 2, 3, None),
            dict(naive=False),
            "Invalid value for argument `filters_pool_proj`. Expected a strictly positive integer (None only with naive=True). Received: filters_pool_proj=None",
        ),
        (
            (0, 3, 5, 2, 3, 2),
            dict(),
            "Invalid value for argument `filters_1x1`. Expected a strictly positive integer. Received: filters_1x1=0",
        ),
        (
            (4, 3, 5, 2, 3, 2),
            dict(kernel_size_5x5=4),
            "Invalid value for argument `kernel_size_5x5`. Expected a strictly positive odd integer or a tuple of 2 strictly positive odd integers. Received: kernel_size_5x5=4",
        ),
        (
            (4, 3, 5, 2, 3, 2),
            dict(kernel_size_5x5=(3, 3, 3)),
            "Received: kernel_size_5x5=(3, 3, 3)",
        ),
        (
            (4, 3, 5, 2, 3, 2),
            dict(naive="yes"),
            "Invalid value for argument `naive`. Expected a boolean. Received: naive='yes'",
        ),
    ],
)
def test_bad_args(args, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        InceptionModule(*args, **kwargs)


@INPUT_SHAPE_CHECKS
def test_bad_input_shape():
    with pytest.raises(ValueError, match=re.escape("Expected a 4D tensor")):
        InceptionModule(*SMALL).build((None, 28, 28))
