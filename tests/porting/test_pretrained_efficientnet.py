"""EfficientNet B0-B7 built with `layout="torchvision"` load torchvision's
weights and give its logits: torchvision's own networks at random weights
(every parameter and buffer), saved as .pth and .safetensors, are the
references.

B0 on every backend, at an even and an odd input size (PyTorch's symmetric
padding differs from "same" on both); B5, built in full, on TensorFlow: the
first with torchvision's other batch normalization (TensorFlow's epsilon and
momentum, from lukemelas' port) and another head width, which the loader's
epsilon is told by. B1-B4 and B6-B7 ran there too (~25-110 s each): B0's and
B5's blocks, wider and deeper, through the same `torchvision_mapping`; their
channel and depth rounding gives keras.applications' parameter counts
(tests/models/test_efficientnet.py), and their batch normalization is
checked against torchvision's below.
"""

import keras
import numpy as np
import pytest

from keras_blocks.models import efficientnet, load_pretrained
from tests.models.model_checks import kernels
from tests.porting.torch_references import (
    assert_logits_close,
    randomized,
    saved_state_dict,
    torch_outputs,
    torchvision,
)

SIZE = 32  # the smallest input (total stride 32): a 1x1 final map
SOURCE = efficientnet.WEIGHTS["torchvision"]


def build(name, shape=(None, None, 3), **kwargs):
    """Our `name` with zero kernels: every test loads weights into it (or
    is refused before any is assigned)."""
    _, _, options = SOURCE.files[name]
    with kernels("zeros"):
        return efficientnet.MODELS[name](
            input_shape=shape, classifier_activation=None, **options, **kwargs
        )


def predict(model, x):
    if keras.config.backend() == "jax":  # one compiled call, not op by op
        return model.predict(x, batch_size=len(x), verbose=0)
    return keras.ops.convert_to_numpy(model(x, training=False))


def check_equal_to_torchvision(net, model, path, shapes, images=2):
    """Loads torchvision's file `path` of its random `net` (`saved_state_dict`:
    its .pth reads the same) into `model`; returns the largest logit
    difference relative to the logits' scale."""
    worst = 0.0
    load_pretrained(model, path, SOURCE)
    for shape in shapes:
        x = np.random.default_rng(0).normal(size=(images, *shape, 3))
        x = x.astype("float32")
        ours, theirs = predict(model, x), torch_outputs(net, x)
        worst = max(worst, assert_logits_close(ours, theirs))
    print(f"{model.name} {keras.config.backend()}: {worst:.2e} of the logit scale")
    return worst


@pytest.fixture(scope="module")
def b0(tmp_path_factory):
    """torchvision's random B0 and its .safetensors file (its .pth reads the
    same)."""
    net = randomized(torchvision().models.efficientnet_b0(), size=SIZE)
    directory = tmp_path_factory.mktemp("efficientnet_b0")
    return net, saved_state_dict(net, directory, "efficientnet_b0")


@pytest.mark.slow
def test_b0_equals_torchvision(b0):
    # 32x32: even sizes before every strided convolution, where symmetric
    # padding differs from "same"; 37x45: odd ones, where they agree.
    net, path = b0
    check_equal_to_torchvision(
        net, build("efficientnet_b0"), path, [(32, 32), (37, 45)]
    )


@pytest.mark.slow
@pytest.mark.backends(
    "tensorflow", reason="the larger variants are checked on TensorFlow (B0 everywhere)"
)
@pytest.mark.parametrize("variant", [5])
def test_larger_variants_equal_torchvision(variant, tmp_path):
    name = f"efficientnet_b{variant}"
    net = randomized(getattr(torchvision().models, name)(), size=SIZE)
    path = saved_state_dict(net, tmp_path, name)
    model = build(name, (SIZE, SIZE, 3))
    check_equal_to_torchvision(net, model, path, [(SIZE, SIZE)], images=1)


@pytest.mark.backend_independent(reason="our table against torchvision's: no Keras")
def test_the_file_table_is_torchvisions():
    # The published file names and top-1 figures are torchvision's own
    # (its weight enums), for the default weights of each model.
    models = torchvision().models
    assert list(SOURCE.files) == [f"efficientnet_b{i}" for i in range(8)]
    for name, (file, top1, options) in SOURCE.files.items():
        weights = models.get_model_weights(name).DEFAULT
        assert weights.url.rsplit("/", 1)[-1] == file, name
        assert weights.meta["_metrics"]["ImageNet-1K"]["acc@1"] == top1, name
        assert options == {"layout": "torchvision"}, name


@pytest.mark.slow
@pytest.mark.backend_independent(reason="our table against torchvision's: no Keras")
def test_the_batch_norm_table_is_torchvisions():
    # The networks on PyTorch's meta device: their layers, no values.
    import torch

    table = efficientnet.efficientnet.TORCHVISION_BATCH_NORM
    assert sorted(table) == [f"b{i}" for i in range(8)]
    for variant, (momentum, epsilon) in table.items():
        with torch.device("meta"):
            net = getattr(torchvision().models, f"efficientnet_{variant}")()
        norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert {m.eps for m in norms} == {epsilon}, variant
        # Keras' momentum is 1 - PyTorch's.
        assert {round(1 - m.momentum, 6) for m in norms} == {momentum}, variant


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
def test_keras_applications_layout_is_refused(b0):
    _, path = b0
    shape = (None, None, 3)
    message = keras_applications_refusal(
        efficientnet.MODELS["efficientnet_b0"](input_shape=shape), path
    )
    assert message == (
        "The model's stem pads 'same' (keras.applications' layout); torchvision's "
        "EfficientNet pads its strided convolutions symmetrically. " + SOURCE.layout
    )
    # torchvision's epsilon alone does not make the layout (B5-B7 share
    # keras.applications' 1e-3): the padding is refused all the same.
    message = keras_applications_refusal(
        efficientnet.MODELS["efficientnet_b0"](input_shape=shape, bn_epsilon=1e-5),
        path,
    )
    assert "pads 'same'" in message
    # The layout with another epsilon: the loader names the epsilon.
    model = build("efficientnet_b0", bn_epsilon=1e-3)
    message = keras_applications_refusal(model, path)
    assert "the source uses 1e-05" in message
    assert "stem/bn (0.001)" in message
    assert message.endswith(SOURCE.layout)


@pytest.mark.slow
def test_preprocessing_is_kept_and_the_head_ignored(b0):
    # With its [0, 255] preprocessing, the model takes pixels and normalizes
    # them itself, as torchvision's transforms do before the network.
    net, path = b0
    model = efficientnet.efficientnet.EfficientNetB0(
        layout="torchvision",
        include_top=False,
        pooling="avg",
        input_shape=(None, None, 3),
    )
    report = load_pretrained(model, path, SOURCE)
    assert report.kept == ["normalization"]
    assert sorted(report.ignored) == ["classifier.1.bias", "classifier.1.weight"]
    pixels = np.random.default_rng(1).uniform(0, 255, (2, SIZE, SIZE, 3))
    mean = np.array(efficientnet.efficientnet.IMAGENET_MEAN)
    std = np.array(efficientnet.efficientnet.IMAGENET_STDDEV)
    normalized = ((pixels / 255 - mean) / std).astype("float32")
    theirs = torch_outputs(net.features, normalized).mean(axis=(2, 3))
    ours = predict(model, pixels.astype("float32"))
    assert_logits_close(ours, theirs)
