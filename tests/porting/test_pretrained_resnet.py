"""ResNet, ResNeXt and SE-ResNet load torchvision's and timm's weights and
give their logits: their own networks at random weights (every parameter and
buffer), saved as .pth and .safetensors, are the references.

ResNet-18 on every backend; on TensorFlow, built in full, the first model of
each other kind of block: ResNet-50 (bottleneck), ResNeXt (grouped, at both
widths) and timm's SE-ResNet-50. ResNet-34, -101 and -152 ran there too
(~20-80 s each): ResNet-18's and ResNet-50's blocks in longer stages, through
the same `torchvision_mapping`; their stage tables give torchvision's
parameter counts (tests/models/test_models_resnet.py).
"""

import dataclasses

import keras
import numpy as np
import pytest

from keras_blocks.models import load_pretrained, resnet
from tests.models.model_checks import kernels
from tests.porting.torch_references import (
    assert_logits_close,
    randomized,
    save_state_dict,
    saved_state_dict,
    timm,
    torch_outputs,
    torchvision,
)

SIZE = 32  # the smallest input (total stride 32): a 1x1 final map
MAPPING_CHECK = pytest.mark.backend_independent(
    reason="the mapping's and the loader's checks run in Python"
)


def reference(name):
    """The source's own network for our `name`, and the source."""
    if name == "se_resnet50":
        return timm().create_model("seresnet50"), "timm"
    return getattr(torchvision().models, name)(), "torchvision"


def check_equal_to_source(name, tmp_path, images=2):
    source_net, source = reference(name)
    source_net = randomized(source_net, size=SIZE)
    with kernels("zeros"):  # every weight is loaded below
        model = resnet.MODELS[name](
            input_shape=(SIZE, SIZE, 3), classifier_activation=None
        )
    x = np.random.default_rng(0).normal(size=(images, SIZE, SIZE, 3))
    x = x.astype("float32")
    theirs = torch_outputs(source_net, x)
    # The .safetensors file; its .pth reads the same arrays.
    path = saved_state_dict(source_net, tmp_path, name)
    load_pretrained(model, path, resnet.WEIGHTS[source])
    ours = keras.ops.convert_to_numpy(model(x, training=False))
    assert_logits_close(ours, theirs)


@pytest.mark.slow
def test_resnet18_equals_torchvision(tmp_path):
    check_equal_to_source("resnet18", tmp_path)


@pytest.mark.slow
@pytest.mark.backends(
    "tensorflow",
    reason="the deep models are checked on TensorFlow (ResNet-18 everywhere)",
)
@pytest.mark.parametrize(
    "name",
    [
        "resnet50",
        "resnext50_32x4d",
        "resnext101_32x8d",
        "se_resnet50",
    ],
)
def test_deeper_models_equal_their_source(name, tmp_path):
    check_equal_to_source(name, tmp_path, images=1)


@pytest.mark.backend_independent(reason="our table against torchvision's: no Keras")
def test_the_file_table_is_torchvisions():
    # The published file names and top-1 figures are torchvision's own
    # (its weight enums), for the default weights of each model.
    models = torchvision().models
    for name, (file, top1, _) in resnet.WEIGHTS["torchvision"].files.items():
        weights = models.get_model_weights(name).DEFAULT
        assert weights.url.rsplit("/", 1)[-1] == file, name
        assert weights.meta["_metrics"]["ImageNet-1K"]["acc@1"] == top1, name


@pytest.mark.slow
@MAPPING_CHECK
def test_keras_applications_layout_is_refused(tmp_path):
    net = randomized(torchvision().models.resnet50())
    _, path = save_state_dict(net, tmp_path, "resnet50")
    model = resnet.ResNet(50, layout="keras_applications", input_shape=(SIZE, SIZE, 3))
    before = [keras.ops.convert_to_numpy(w) for w in model.weights]
    with pytest.raises(ValueError, match=r"has a bias.*layout='paper'"):
        load_pretrained(model, path, resnet.WEIGHTS["torchvision"])
    for weight, value in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), value)


@pytest.mark.slow
@MAPPING_CHECK
def test_a_headless_model_ignores_the_classifier(tmp_path):
    net = randomized(torchvision().models.resnet18())
    _, path = save_state_dict(net, tmp_path, "resnet18")
    model = resnet.ResNet(18, include_top=False, input_shape=(SIZE, SIZE, 3))
    report = load_pretrained(model, path, resnet.WEIGHTS["torchvision"])
    assert sorted(report.ignored) == ["fc.bias", "fc.weight"]
    # Without the source's head prefixes, the classifier's keys are refused.
    strict = dataclasses.replace(resnet.WEIGHTS["torchvision"], head=())
    with pytest.raises(ValueError, match=r"2 unexpected keys .*: fc\.bias, fc\.w"):
        load_pretrained(model, path, strict)
