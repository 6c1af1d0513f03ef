"""keras_blocks.models.googlenet: parameter counts, the paper's table, the auxiliary
classifiers and `inference_model`, saving, sizes, bad input."""

import re

import keras
import numpy as np
import pytest

from keras_blocks.layers import InceptionModule, LocalResponseNormalization
from keras_blocks.models import googlenet
from tests.layers.layer_checks import to_numpy
from tests.models.model_checks import (
    argument_checks,
    builders_arithmetic,
    random_kernels,
    trainable_count,
    zero_kernels,
)

# A training step compiles the whole graph, ~30-40 s under JAX on two cores;
# the layers' own tests train them under JAX.
_NOT_ON_JAX_TRAINING = pytest.mark.backends(
    "tensorflow",
    "torch",
    reason="~35 s to compile a training step under JAX; the layers' own tests "
    "train them there",
)
AUX_SMALL = (googlenet.AUX_MIN_SIZE, googlenet.AUX_MIN_SIZE, 3)


def pixels(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, shape).astype("float32")


@builders_arithmetic
@pytest.mark.parametrize(
    "kwargs, expected",
    [
        # torchvision's GoogLeNet, but with the paper's 5x5 convolutions (its
        # 3x3 ones give 6,624,904).
        ({}, 7_005_832),
        (dict(batch_norm=False, lrn=True), 6_998_552),  # the 2014 paper's
        (dict(aux_classifiers=True), 7_005_832 + 6_379_984),
        (dict(layout="torchvision"), 6_624_904),  # torchvision's own count
    ],
)
def test_trainable_parameter_counts(kwargs, expected):
    with zero_kernels():  # counts only
        model = googlenet.GoogLeNet(**kwargs)
    assert trainable_count(model) == expected
    assert model.input_shape == (None, 224, 224, 3)
    assert model.get_layer("inception_5b").output.shape == (None, 7, 7, 1024)


@pytest.fixture(scope="module")
def aux_model():
    """A GoogLeNet with both auxiliary classifiers, shared by several tests:
    under JAX its first build alone takes ~45 s (an initializer compiled per
    new weight shape)."""
    with random_kernels():
        model = googlenet.GoogLeNet(
            aux_classifiers=True, input_shape=AUX_SMALL, classes=3
        )
    # BN statistics away from their start, so that saving must keep them.
    rng = np.random.default_rng(0)
    for weight in model.non_trainable_weights:
        weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    return model


@pytest.mark.slow
def test_paper_table(aux_model):
    model = aux_model
    modules = [layer for layer in model.layers if isinstance(layer, InceptionModule)]
    assert [layer.name for layer in modules] == [
        f"inception_{name}"
        for name in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")
    ]
    assert [
        (
            m.filters_1x1,
            m.filters_3x3_reduce,
            m.filters_3x3,
            m.filters_5x5_reduce,
            m.filters_5x5,
            m.filters_pool_proj,
        )
        for m in modules
    ] == [
        (64, 96, 128, 16, 32, 32),
        (128, 128, 192, 32, 96, 64),
        (192, 96, 208, 16, 48, 64),
        (160, 112, 224, 24, 64, 64),
        (128, 128, 256, 24, 64, 64),
        (112, 144, 288, 32, 64, 64),
        (256, 160, 320, 32, 128, 128),
        (256, 160, 320, 32, 128, 128),
        (384, 192, 384, 48, 128, 128),
    ]
    assert all(m.batch_norm and m.bn_epsilon == 1e-3 for m in modules)
    # 65 -> 33 -> 17 -> 9 -> 5 -> 3, with 832 channels after 4e and 5a.
    assert model.get_layer("pool2").output.shape == (None, 9, 9, 192)
    assert model.get_layer("pool4").output.shape == (None, 3, 3, 832)
    assert model.get_layer("dropout").rate == 0.4
    assert not any(
        isinstance(layer, LocalResponseNormalization) for layer in model.layers
    )


@pytest.mark.slow
def test_auxiliary_classifiers(aux_model):
    model = aux_model
    assert model.output_names == ["predictions", "aux1", "aux2"]
    assert [tuple(shape) for shape in model.output_shape] == [(None, 3)] * 3
    # 5x5/3 average pooling on the 5x5 outputs of 4a and 4d.
    assert model.get_layer("aux1_pool").output.shape == (None, 1, 1, 512)
    assert model.get_layer("aux2_pool").output.shape == (None, 1, 1, 528)
    assert model.get_layer("aux1_conv").filters == 128
    assert model.get_layer("aux1_fc").units == 1024
    assert [model.get_layer(f"aux{i}_dropout").rate for i in (1, 2)] == [0.7, 0.7]


@pytest.mark.slow
@_NOT_ON_JAX_TRAINING
def test_auxiliary_classifiers_train(aux_model):
    heads = ("predictions", "aux1_fc", "aux2_fc")
    before = [to_numpy(aux_model.get_layer(h).kernel).copy() for h in heads]
    # One step on the three losses, eagerly: the claim is where the gradients
    # reach, not TensorFlow's tracing of the whole graph (36 s of its CI run;
    # test_main_smoke_paper_configuration traces a GoogLeNet's step).
    aux_model.compile(
        optimizer="sgd", loss=["sparse_categorical_crossentropy"] * 3, run_eagerly=True
    )
    labels = np.array([0, 2])
    loss = aux_model.train_on_batch(pixels((2, *AUX_SMALL), seed=3), (labels,) * 3)
    assert np.isfinite(np.ravel(loss)).all()
    for head, kernel in zip(heads, before, strict=True):
        assert not np.array_equal(to_numpy(aux_model.get_layer(head).kernel), kernel)


@pytest.mark.slow
def test_inference_model(aux_model):
    model = aux_model
    inference = googlenet.inference_model(model)
    assert len(inference.outputs) == 1
    assert not any(layer.name.startswith("aux") for layer in inference.layers)
    # The weights are shared, not copied.
    assert inference.get_layer("predictions") is model.get_layer("predictions")
    x = pixels((2, *AUX_SMALL), seed=1)
    main, aux1, aux2 = (to_numpy(y) for y in model(x))
    assert main.shape == aux1.shape == aux2.shape == (2, 3)
    np.testing.assert_array_equal(to_numpy(inference(x)), main)
    assert googlenet.inference_model(inference) is inference


@pytest.mark.slow
def test_save_and_load(aux_model, tmp_path):
    model = aux_model
    path = tmp_path / "googlenet.keras"
    model.save(path)
    with zero_kernels():  # the file's are loaded in
        loaded = keras.saving.load_model(path, safe_mode=True)
    x = pixels((2, *AUX_SMALL), seed=2)
    for restored, original in zip(loaded(x), model(x), strict=True):
        np.testing.assert_array_equal(to_numpy(restored), to_numpy(original))


@pytest.mark.parametrize(
    "pooling, shape", [(None, (None, None, None, 1024)), ("max", (None, 1024))]
)
def test_feature_extractor_at_any_size(pooling, shape):
    # Symbolic: a forward pass at a new size costs ~15 s under JAX (each
    # operation compiled per shape); the VGG and AlexNet tests run theirs.
    with zero_kernels():
        model = googlenet.GoogLeNet(
            include_top=False, pooling=pooling, input_shape=(None, None, 3)
        )
    assert model.output_shape == shape


@pytest.mark.slow
@_NOT_ON_JAX_TRAINING
def test_main_smoke_paper_configuration(capsys):
    # The default configuration trains in the aux_model fixture.
    from examples.models import main  # the command that builds a model by name

    model = main(
        ["--smoke", "--no-summary", "--model", "googlenet_no_bn_lrn", "--classes", "3"]
    )
    assert model.name == "googlenet_no_bn_lrn"
    assert model.input_shape == (None, 32, 32, 3)
    out = capsys.readouterr().out
    assert "one step: loss" in out and "predictions (2, 3)" in out
    norms = [
        layer.name
        for layer in model.layers
        if isinstance(layer, LocalResponseNormalization)
    ]
    assert norms == ["norm1", "norm2"]
    assert not model.non_trainable_weights  # no BN statistics
    assert model.get_layer("conv1").conv.use_bias


@argument_checks
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(pooling="mean"),
            "Invalid value for argument `pooling`. Expected one of (None, 'avg', 'max'). Received: pooling='mean'",
        ),
        (
            dict(classes=1.5),
            "Invalid value for argument `classes`. Expected a strictly positive integer. Received: classes=1.5",
        ),
        (
            dict(input_shape=(31, 64, 3)),
            "Invalid value for argument `input_shape`. GoogLeNet needs a shape (height, width, channels) with sizes of at least 32. Received: input_shape=(31, 64, 3)",
        ),
        (
            dict(aux_classifiers=True, input_shape=(64, 64, 3)),
            "Invalid value for argument `input_shape`. GoogLeNet with auxiliary classifiers needs a shape (height, width, channels) with sizes of at least 65. Received: input_shape=(64, 64, 3)",
        ),
        (
            dict(aux_classifiers=True, input_shape=(None, None, 3)),
            "Invalid value for argument `input_shape`. With aux_classifiers=True, GoogLeNet with auxiliary classifiers needs a fully known input shape (it flattens a feature map into dense layers). Received: input_shape=(None, None, 3)",
        ),
        (
            dict(layout="tensorflow"),
            "Invalid value for argument `layout`. Expected one of ('paper', 'torchvision'). Received: layout='tensorflow'",
        ),
        (
            dict(layout="torchvision", batch_norm=False, lrn=True),
            "Invalid value for argument `layout`. torchvision's GoogLeNet has batch normalization and no LRN. Received: layout='torchvision', batch_norm=False, lrn=True",
        ),
        (
            dict(layout="torchvision", input_shape=(14, 64, 3)),
            "GoogLeNet needs a shape (height, width, channels) with sizes of at least 15. Received: input_shape=(14, 64, 3)",
        ),
        (
            dict(layout="torchvision", aux_classifiers=True, input_shape=(78, 78, 3)),
            "GoogLeNet with auxiliary classifiers needs a shape (height, width, channels) with sizes of at least 79. Received: input_shape=(78, 78, 3)",
        ),
        (
            dict(aux_classifiers=True, include_top=False),
            "Invalid value for argument `aux_classifiers`. The auxiliary classifiers need include_top=True. Received: aux_classifiers=True, include_top=False",
        ),
    ],
)
def test_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        googlenet.GoogLeNet(**kwargs)
