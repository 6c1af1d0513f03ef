"""VGG and AlexNet load torchvision's weights and give its logits: its own
networks at random weights (every parameter and buffer), saved as .pth and
.safetensors, are the references, at 224x224 (the flatten sizes need it).

AlexNet (layout="torchvision") and VGG-11 on every backend, with the whole
network; AlexNet in channels_first too (PyTorch: TensorFlow's CPU
convolutions refuse channels_first). On TensorFlow, VGG-11-BN up to the last
feature map (include_top=False, from the `features` part of torchvision's
network): its classifier is VGG-11's, which the whole-network checks cover,
and its 120M parameters would cost most of the time. VGG-13/16/19 and their
BN variants are VGG-11's and VGG-11-BN's mapping (`vgg.torchvision_keys`)
over more convolutions a stage: their keys are checked against torchvision's
networks, without building them.
"""

import functools
import re

import keras
import numpy as np
import pytest

from keras_blocks.models import alexnet, load_pretrained, vgg
from tests.models.model_checks import kernels
from tests.porting.torch_references import (
    assert_logits_close,
    randomized,
    saved_state_dict,
    torch_outputs,
    torchvision,
)

SIZE = 224
FAMILIES = {"alexnet_torchvision": alexnet}
FAMILIES.update({name: vgg for name in vgg.WEIGHTS["torchvision"].files})
# The refusals and the load reports are the mapping's and the loader's checks,
# in Python before any weight is assigned: the same under every backend.
MAPPING_CHECK = pytest.mark.backend_independent(
    reason="the mapping's and the loader's checks run in Python"
)


@functools.cache
def reference(name):
    """torchvision's network for our `name`, at random weights."""
    builder = getattr(torchvision().models, name.removesuffix("_torchvision"))
    # torchvision's own initialization would be overwritten.
    options = {} if name.startswith("alexnet") else {"init_weights": False}
    return randomized(builder(**options))


def images(size=SIZE):
    x = np.random.default_rng(0).normal(size=(1, size, size, 3))
    return x.astype("float32")  # (1, h, w, 3)


def check_files(model, net, theirs, x, tmp_path, name, family):
    """Loads `net` from its files (.pth and .safetensors, which read the same
    arrays) into `model`; the relative difference of the outputs."""
    path = saved_state_dict(net, tmp_path, name)
    load_pretrained(model, path, family.WEIGHTS["torchvision"])
    ours = keras.ops.convert_to_numpy(model(x, training=False))
    worst = assert_logits_close(ours, theirs)
    print(f"{name}: the logits differ by {worst:.2e} of their scale")
    return worst


def check_equal_to_torchvision(name, tmp_path):
    net = reference(name)
    with kernels("zeros"):  # every weight is loaded below
        model = FAMILIES[name].MODELS[name](classifier_activation=None)
    assert model.input_shape == (None, SIZE, SIZE, 3)  # the default
    x = images()
    check_files(model, net, torch_outputs(net, x), x, tmp_path, name, FAMILIES[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet_torchvision", "vgg11"])
def test_equal_to_torchvision(name, tmp_path):
    check_equal_to_torchvision(name, tmp_path)


# torchvision's configuration letters (its vgg.cfgs)
LETTERS = {11: "A", 13: "B", 16: "D", 19: "E"}


@pytest.mark.slow
@pytest.mark.backends(
    "tensorflow", reason="the other VGGs are checked on TensorFlow (VGG-11 everywhere)"
)
@pytest.mark.parametrize(
    "name",
    # VGG-13/16/19 (and _bn) ran here too, ~15-30 s each: the same mapping
    # code over more convolutions, whose keys the next test checks.
    ["vgg11_bn"],
)
def test_deeper_features_equal_torchvision(name, tmp_path):
    import torch

    depth, batch_norm = int(name[3:5]), name.endswith("_bn")
    tv_vgg = torchvision().models.vgg
    # torchvision's `features`, as its vgg* builders make them.
    features = tv_vgg.make_layers(tv_vgg.cfgs[LETTERS[depth]], batch_norm=batch_norm)
    holder = torch.nn.Module()  # its keys: features.*
    holder.features = randomized(features)
    with kernels("zeros"):  # every weight is loaded below
        model = vgg.MODELS[name](include_top=False, input_shape=(SIZE, SIZE, 3))
    x = images()
    theirs = torch_outputs(features, x).transpose(0, 2, 3, 1)  # (1, 7, 7, 512)
    check_files(model, holder, theirs, x, tmp_path, name, vgg)


@pytest.mark.slow
@pytest.mark.backends(
    "torch",
    reason="channels_first convolutions: PyTorch (TensorFlow's CPU ones refuse it)",
)
def test_channels_first_alexnet_equals_torchvision(tmp_path):
    net = reference("alexnet_torchvision")
    keras.config.set_image_data_format("channels_first")
    try:
        model = alexnet.AlexNet(layout="torchvision", classifier_activation=None)
    finally:
        keras.config.set_image_data_format("channels_last")
    assert model.input_shape == (None, 3, SIZE, SIZE)
    assert model.get_layer("flatten").input.shape == (None, 256, 6, 6)
    x = images()
    theirs = torch_outputs(net, x)
    x = x.transpose(0, 3, 1, 2)  # (1, 3, h, w)
    check_files(model, net, theirs, x, tmp_path, "alexnet_cf", alexnet)


@pytest.mark.backend_independent(reason="our key table against torchvision's: no Keras")
@pytest.mark.parametrize("name", sorted(vgg.WEIGHTS["torchvision"].files))
def test_the_mapping_takes_every_key_of_torchvisions_features(name):
    # The networks on PyTorch's meta device: keys and shapes, no values.
    import torch

    depth, batch_norm = int(name[3:5]), name.endswith("_bn")
    with torch.device("meta"):
        net = getattr(torchvision().models, name)(init_weights=False)
    theirs = {  # prefix: the weight's shape (a BN's is its channels)
        key.removesuffix(".weight"): tensor.shape
        for key, tensor in net.state_dict().items()
        if key.startswith("features.") and key.endswith(".weight")
    }
    keys = vgg.torchvision_keys(depth, batch_norm)
    assert sorted(keys.values()) == sorted(theirs)
    for path, prefix in keys.items():  # block{stage}_conv{n}/conv or /bn
        stage = int(path[len("block")])
        expected = vgg.STAGE_FILTERS[stage - 1]
        assert theirs[prefix][0] == expected, (path, prefix)
    # In torchvision's order: the convolutions' indices grow with ours.
    convs = [int(keys[p].split(".")[1]) for p in keys if p.endswith("/conv")]
    assert convs == sorted(convs) and len(convs) == sum(vgg.DEPTHS[depth])


@pytest.mark.backend_independent(reason="our table against torchvision's: no Keras")
def test_the_file_table_is_torchvisions():
    # The published file names and top-1 figures are torchvision's own (its
    # weight enums), for the default weights of each model.
    models = torchvision().models
    for name, family in FAMILIES.items():
        file, top1, _ = family.WEIGHTS["torchvision"].files[name]
        weights = models.get_model_weights(name.removesuffix("_torchvision")).DEFAULT
        assert weights.url.rsplit("/", 1)[-1] == file, name
        assert weights.meta["_metrics"]["ImageNet-1K"]["acc@1"] == top1, name
    assert sorted(FAMILIES) == sorted(
        [f"vgg{d}{bn}" for d in vgg.DEPTHS for bn in ("", "_bn")]
        + ["alexnet_torchvision"]
    )


@pytest.mark.slow
@MAPPING_CHECK
@pytest.mark.parametrize(
    "name, build, message",
    [
        (
            "alexnet_torchvision",
            # the paper's variant (headless: the refusal needs no top)
            lambda: alexnet.AlexNet(include_top=False, input_shape=(67, 67, 3)),
            r"^torchvision's AlexNet is the 'one weird trick' variant .* "
            r"Build AlexNet\(layout='torchvision'\)",
        ),
        (
            "alexnet_torchvision",
            lambda: alexnet.AlexNet(layout="torchvision", input_shape=(96, 96, 3)),
            r"^torchvision's AlexNet flattens a \(6, 6, 256\) feature map .* "
            r"this model flattens \(2, 2, 256\): it needs "
            r"input_shape=\(224, 224, 3\)",
        ),
        (
            "vgg11",
            lambda: vgg.VGG(11, input_shape=(64, 64, 3)),
            r"^torchvision's VGG flattens a \(7, 7, 512\) feature map .* "
            r"this model flattens \(2, 2, 512\): it needs "
            r"input_shape=\(224, 224, 3\)",
        ),
        (
            "vgg11",
            lambda: vgg.VGG(11, lrn=True, include_top=False, input_shape=(32, 32, 3)),
            r"^torchvision publishes no VGG with LRN \(lrn=True\)",
        ),
    ],
)
def test_another_layout_is_refused(name, build, message):
    model = build()
    before = [keras.ops.convert_to_numpy(w) for w in model.weights]
    family = FAMILIES[name]
    # The mapping refuses the layout before any value is read: the network on
    # PyTorch's meta device (keys and shapes, no values) is enough, and a
    # refusal that came after reading would fail on its tensors.
    import torch

    builder = getattr(torchvision().models, name.removesuffix("_torchvision"))
    with torch.device("meta"):
        state = builder().state_dict()
    with pytest.raises(ValueError, match=message) as error:
        load_pretrained(model, state, family.WEIGHTS["torchvision"])
    # One error, and what to build said once, at its end.
    assert str(error.value).count("Build") == 1
    assert str(error.value).endswith(family.WEIGHTS["torchvision"].layout)
    for weight, value in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), value)


@pytest.mark.slow
@MAPPING_CHECK
def test_a_headless_model_ignores_the_classifier():
    state = reference("alexnet_torchvision").state_dict()
    model = alexnet.AlexNet(
        layout="torchvision", include_top=False, input_shape=(None, None, 3)
    )
    report = load_pretrained(model, state, alexnet.WEIGHTS["torchvision"])
    assert sorted(report.ignored) == [
        f"classifier.{i}.{kind}" for i in (1, 4, 6) for kind in ("bias", "weight")
    ]
    assert re.fullmatch(
        r"Loaded 10 tensors .* into 5 layers\..*", report.summary(), re.S
    )
