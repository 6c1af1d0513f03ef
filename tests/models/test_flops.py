"""tools/flops.py: MACs of tiny models equal the hand formulas.

The counter traces models with TensorFlow, so these tests run under the
TensorFlow backend only.
"""

import json

import keras
import pytest

from keras_blocks import layers

pytestmark = pytest.mark.backends(
    "tensorflow", reason="the MAC counter traces models with TensorFlow"
)


@pytest.fixture(scope="module")
def flops():
    from tools import flops

    return flops


def model_of(layer, shape):
    inputs = keras.Input(shape)
    return keras.Model(inputs, layer(inputs))


@pytest.mark.parametrize(
    "layer, shape, expected",
    [
        # Output elements x kernel height x kernel width x input channels.
        (keras.layers.Conv2D(4, 3, padding="same"), (8, 8, 3), 8 * 8 * 4 * 3 * 3 * 3),
        (keras.layers.Conv2D(5, (3, 1), strides=2), (9, 7, 2), 4 * 4 * 5 * 3 * 1 * 2),
        # Grouped: each output channel sees in / groups = 2 input channels.
        (keras.layers.Conv2D(6, 3, groups=2), (8, 8, 4), 6 * 6 * 6 * 3 * 3 * 2),
        # Depthwise: each output channel sees one input channel.
        (keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (8, 8, 4), 6 * 6 * 8 * 9),
        # Transposed: each input element spreads over kh x kw x out outputs.
        (
            keras.layers.Conv2DTranspose(3, 2, strides=2),
            (5, 5, 4),
            5 * 5 * 4 * 2 * 2 * 3,
        ),
        (keras.layers.Conv1D(4, 3), (10, 2), 8 * 4 * 3 * 2),
        # Dense: in x out, for each position of a sequence.
        (keras.layers.Dense(5), (10,), 10 * 5),
        (keras.layers.Dense(5), (7, 10), 7 * 10 * 5),
        (keras.layers.EinsumDense("ab,bc->ac", output_shape=5), (10,), 10 * 5),
        # No MACs: normalization, pooling, activations.
        (keras.layers.BatchNormalization(), (4, 4, 3), 0),
        (keras.layers.MaxPooling2D(2), (4, 4, 3), 0),
    ],
    ids=[
        "conv",
        "conv_strided",
        "grouped",
        "depthwise",
        "transposed",
        "conv1d",
        "dense",
        "dense_sequence",
        "einsum_dense",
        "batch_norm",
        "max_pool",
    ],
)
def test_single_layers(flops, layer, shape, expected):
    assert flops.count_macs(model_of(layer, shape)) == expected


def test_grouped_conv_bn_act_and_types(flops):
    # A ResNeXt-style unit: the grouped convolution runs in a nested function.
    model = model_of(layers.ConvBNAct(8, 3, groups=4), (6, 6, 8))
    assert flops.count_macs(model) == 6 * 6 * 8 * 3 * 3 * 2
    assert flops.macs_by_type(model) == {"Conv2D": 6 * 6 * 8 * 3 * 3 * 2}


def test_local_response_normalization_is_not_counted(flops):
    # Its window sums run as a small matrix product on TensorFlow; the papers
    # do not count LRN. Named as Keras names a second one, and with `_2`.
    inputs = keras.Input((6, 6, 8))
    x = keras.layers.Conv2D(16, 3)(inputs)
    x = layers.LocalResponseNormalization()(x)
    x = layers.LocalResponseNormalization(name="norm_2")(x)
    model = keras.Model(inputs, x)
    assert flops.macs_by_type(model) == {"Conv2D": 4 * 4 * 16 * 3 * 3 * 8}


def test_alexnet_counts_its_convolutions_and_dense_layers(flops):
    from keras_blocks.models import alexnet

    # 227x227, the paper's grouping: 0.724 G in the AlexNet page's table.
    assert flops.count_macs(alexnet.AlexNet()) == 724_406_816


def test_channels_first_counts_the_same(flops):
    layer = keras.layers.Conv2D(4, 3, data_format="channels_first")
    assert flops.count_macs(model_of(layer, (3, 8, 8))) == 6 * 6 * 4 * 3 * 3 * 3


def test_table_names_the_layers(flops):
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(3, 1, name="squeeze")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
    rows = flops.mac_table(model)
    assert [(op_type, macs) for _, op_type, macs in rows] == [
        ("Conv2D", 4 * 4 * 3 * 2),
        ("MatMul", 48 * 2),
    ]
    assert "squeeze" in rows[0][0] and "head" in rows[1][0]


def test_cifar_resnet20(flops):
    from keras_blocks.models import cifar_resnet

    # conv1, then 6 convolutions per stage at 32, 16 and 8 pixels (the first of
    # stages 2 and 3 from half the channels), then the classifier.
    expected = (
        32 * 32 * 16 * 9 * 3
        + 6 * 32 * 32 * 16 * 9 * 16
        + 16 * 16 * 32 * 9 * (16 + 5 * 32)
        + 8 * 8 * 64 * 9 * (32 + 5 * 64)
        + 64 * 10
    )
    assert expected == 40_551_040  # the "41 M" usually quoted
    assert flops.count_macs(cifar_resnet.CIFARResNet(20)) == expected


def test_unknown_input_size(flops):
    model = model_of(keras.layers.Conv2D(2, 3), (None, None, 3))
    with pytest.raises(ValueError, match=r"unknown sizes \(None, None, 3\)"):
        flops.count_macs(model)
    assert flops.count_macs(model, input_shape=(5, 5, 3)) == 3 * 3 * 2 * 9 * 3


@pytest.mark.slow
def test_model_tables_smoke(tmp_path):
    from tools import model_tables as tables

    results = tmp_path / "counts.json"
    tables.main(
        [
            "--family",
            "cifar10_cnn",
            "--output",
            str(tmp_path),
            "--results",
            str(results),
        ]
    )
    text = (tmp_path / "cifar10_cnn_counts.md").read_text()
    assert "| CIFAR-10 CNN (GAP, default) | 32x32 | 295,312 | 294,416 |" in text
    counts = json.loads(results.read_text())["cifar10_cnn"]
    assert counts["CIFAR-10 CNN (GAP, default)"]["keras_blocks"]["macs"] == 38_640_372
