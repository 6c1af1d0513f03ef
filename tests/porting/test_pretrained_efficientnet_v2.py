"""EfficientNetV2 S, M and L built with `layout="torchvision"` load
torchvision's weights and give its logits: torchvision's own networks at
random weights (every parameter and buffer, BN statistics measured on real
activations), saved as .pth and .safetensors, are the references.

S on every backend; M and L, S's blocks in deeper tables, under one backend
(L with its built-in preprocessing, torchvision's mean and std of 0.5). At
64x64 every strided convolution sees an even size, where PyTorch's symmetric
padding differs from "same".
"""

import keras
import numpy as np
import pytest

from keras_blocks.models import efficientnet_v2, load_pretrained
from tests.models.model_checks import kernels, same_blocks_as
from tests.porting.torch_references import (
    assert_logits_close,
    randomized,
    saved_state_dict,
    torch_outputs,
    torchvision,
)

SIZE = 64
SOURCE = efficientnet_v2.WEIGHTS["torchvision"]


def build(name, **kwargs):
    """Our `name` in torchvision's layout with zero kernels: every test loads
    weights into it (or is refused before any is assigned)."""
    _, _, options = SOURCE.files[name]
    with kernels("zeros"):
        return efficientnet_v2.MODELS[name](
            input_shape=(SIZE, SIZE, 3),
            classifier_activation=None,
            **{**options, **kwargs},
        )


def predict(model, x):
    if keras.config.backend() == "jax":  # one compiled call, not op by op
        return model.predict(x, batch_size=len(x), verbose=0)
    return keras.ops.convert_to_numpy(model(x, training=False))


def reference(name, directory):
    """torchvision's random `name` and its saved .safetensors file."""
    net = randomized(getattr(torchvision().models, name)(), size=SIZE)
    return net, saved_state_dict(net, directory, name)


def check_equal_to_torchvision(net, path, name, images):
    """Loads torchvision's file `path` of its random `net` into our `name`
    and compares the logits of `images` random images; returns the largest
    difference relative to the logits' scale."""
    model = build(name)
    report = load_pretrained(model, path, SOURCE)
    assert not report.kept  # every weight of ours came from the file
    x = np.random.default_rng(0).normal(size=(images, SIZE, SIZE, 3))
    x = x.astype("float32")
    worst = assert_logits_close(predict(model, x), torch_outputs(net, x))
    print(f"{name} {keras.config.backend()}: {worst:.2e} of the logit scale")
    return worst


@pytest.fixture(scope="module")
def s(tmp_path_factory):
    return reference("efficientnet_v2_s", tmp_path_factory.mktemp("v2_s"))


@pytest.mark.slow
@pytest.mark.backends(
    "tensorflow",
    "torch",
    reason="V2's layers are V1's MBConvBlock and ConvBNAct, whose torchvision "
    "equality is checked on JAX with EfficientNet-B0 (test_pretrained_"
    "efficientnet.py); the mapping is Python",
)
def test_s_equals_torchvision(s):
    check_equal_to_torchvision(*s, "efficientnet_v2_s", images=2)


@pytest.mark.slow
@same_blocks_as("S")
def test_m_equals_torchvision(tmp_path):
    net, path = reference("efficientnet_v2_m", tmp_path)
    check_equal_to_torchvision(net, path, "efficientnet_v2_m", images=1)


@pytest.mark.slow
@same_blocks_as("S")
def test_l_with_its_preprocessing_equals_torchvision(tmp_path):
    # L's weights expect images normalized with mean and std 0.5: the
    # built-in preprocessing takes pixels in [0, 255] and does that.
    net, path = reference("efficientnet_v2_l", tmp_path)
    model = build("efficientnet_v2_l", include_preprocessing=True)
    load_pretrained(model, path, SOURCE)
    pixels = np.random.default_rng(0).uniform(0, 255, (1, SIZE, SIZE, 3))
    normalized = ((pixels / 255 - 0.5) / 0.5).astype("float32")
    worst = assert_logits_close(
        predict(model, pixels.astype("float32")), torch_outputs(net, normalized)
    )
    print(f"efficientnet_v2_l {keras.config.backend()}: {worst:.2e} of the scale")


@pytest.mark.backend_independent(reason="our table against torchvision's: no Keras")
def test_the_file_table_is_torchvisions():
    # The published file names and top-1 figures are torchvision's own
    # (its weight enums), for the default weights of each model.
    models = torchvision().models
    assert list(SOURCE.files) == [f"efficientnet_v2_{v}" for v in "sml"]
    for name, (file, top1, options) in SOURCE.files.items():
        weights = models.get_model_weights(name).DEFAULT
        assert weights.url.rsplit("/", 1)[-1] == file, name
        assert weights.meta["_metrics"]["ImageNet-1K"]["acc@1"] == top1, name
        assert options == {"layout": "torchvision"}, name
        # What its transforms normalize with: the built-in preprocessing's.
        transforms = weights.transforms()
        expected = (
            efficientnet_v2.HALF if name.endswith("_l") else efficientnet_v2.IMAGENET
        )
        np.testing.assert_allclose(
            np.array(transforms.mean) * 255, expected[0], err_msg=name
        )
        np.testing.assert_allclose(
            np.array(transforms.std) * 255, expected[1], err_msg=name
        )


@pytest.mark.slow
@pytest.mark.backend_independent(reason="our tables against torchvision's: no Keras")
def test_batch_norm_dropout_and_tables_are_torchvisions():
    # The networks on PyTorch's meta device: their layers, no values.
    import torch

    momentum, epsilon = efficientnet_v2.BATCH_NORM
    for variant in "sml":
        with torch.device("meta"):
            net = getattr(torchvision().models, f"efficientnet_v2_{variant}")()
        norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert {m.eps for m in norms} == {epsilon}, variant
        assert {round(1 - m.momentum, 6) for m in norms} == {momentum}, variant
        dropout = net.classifier[0].p
        assert dropout == efficientnet_v2.TORCHVISION_DROPOUT[variant], variant
        # Stage by stage: (fused, repeats, stride, expansion, in, out).
        table = efficientnet_v2.PRESETS[variant].blocks
        theirs = [
            (
                type(stage[0]).__name__ == "FusedMBConv",
                len(stage),
                _stride(stage[0]),
                stage[0].block[-1][0].in_channels,
                stage[-1].block[-1][0].out_channels,
            )
            for stage in net.features[1:-1]
        ]
        ours = [
            (
                s.block == "fused_mbconv",
                s.repeats,
                s.strides,
                s.filters_in,
                s.filters_out,
            )
            for s in table
        ]
        # The projection's input: the expanded width (or the input's, for a
        # single fused convolution).
        expanded = [
            s.filters_in * (s.expand_ratio if s.expand_ratio > 1 else 1) for s in table
        ]
        ours = [(*o[:3], e, o[4]) for o, e in zip(ours, expanded, strict=True)]
        assert theirs == ours, variant


def _stride(block):
    convolutions = [m for m in block.modules() if hasattr(m, "stride")]
    return max(m.stride[0] for m in convolutions)


def keras_applications_refusal(model, path):
    before = [keras.ops.convert_to_numpy(w) for w in model.weights]
    with pytest.raises(ValueError) as error:
        load_pretrained(model, path, SOURCE)
    for weight, value in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), value)
    return str(error.value)


@pytest.mark.slow
@pytest.mark.backend_independent(
    reason="the mapping's and the loader's checks run in Python"
)
def test_keras_applications_layout_is_refused(s):
    _, path = s
    with kernels("zeros"):
        model = efficientnet_v2.MODELS["efficientnet_v2_s"](input_shape=(SIZE, SIZE, 3))
    message = keras_applications_refusal(model, path)
    assert message == (
        "The model's stem pads 'same' (keras.applications' layout); torchvision's "
        "EfficientNetV2 pads its strided convolutions symmetrically. " + SOURCE.layout
    )
