"""Weights and preprocessing by name: `get_model(name, weights=...)` builds the
model in its weights' layout and loads torchvision's file (by its published
name), keras.applications' weights, or its own; `include_preprocessing=True`
takes raw 0-255 RGB images and equals the source's own preprocessing
(torchvision's `Normalize`, keras.applications' `preprocess_input`); the
model exports to ONNX as a one-input graph."""

import os
import re

import keras
import numpy as np
import pytest

from keras_blocks import models
from keras_blocks.layers.image_preprocessing import IMAGENET_MEAN, IMAGENET_STDDEV
from keras_blocks.models import _get_model
from tests.porting.torch_references import (
    assert_logits_close,
    randomized,
    save_state_dict,
    torch_outputs,
    torchvision,
)

SIZE = 32
EVERY_BACKEND = pytest.mark.backends(
    "tensorflow", "jax", "torch", reason="the loaded model runs on each backend"
)
RAW = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")


def normalized(raw):
    """torchvision's transforms: ToTensor's / 255, then Normalize."""
    import torch

    transforms = torchvision().transforms
    nchw = torch.from_numpy(raw.transpose(0, 3, 1, 2).copy()) / 255.0
    out = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STDDEV)(nchw)
    return out.numpy().transpose(0, 2, 3, 1).copy()


def published_file(net, name, directory):
    """`net`'s state dict saved under the file name torchvision publishes."""
    pth, _ = save_state_dict(net, directory, name)
    published = directory / models.model_entry(name).weights["torchvision"].file
    os.replace(pth, published)
    return published


def predict(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory):
    net = randomized(torchvision().models.resnet18(), size=SIZE)
    return net, published_file(net, "resnet18", tmp_path_factory.mktemp("r18"))


@EVERY_BACKEND
def test_resnet18_loads_torchvisions_file_by_name(resnet18):
    net, path = resnet18
    options = dict(input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    model = models.get_model("resnet18", weights=path, **options)
    x = normalized(RAW)
    assert_logits_close(predict(model, x), torch_outputs(net, x))
    # Raw images in: the model normalizes them as torchvision's transforms.
    raw_in = models.get_model(
        "resnet18", weights=path, include_preprocessing=True, **options
    )
    assert_logits_close(predict(raw_in, RAW), torch_outputs(net, x))


@pytest.mark.slow
@EVERY_BACKEND
def test_efficientnet_b0_loads_torchvisions_file_in_its_layout(tmp_path):
    net = randomized(torchvision().models.efficientnet_b0(), size=SIZE)
    path = published_file(net, "efficientnet_b0", tmp_path)
    model = models.get_model(
        "efficientnet_b0",
        weights=path,  # builds layout="torchvision": the file's
        include_preprocessing=True,
        input_shape=(SIZE, SIZE, 3),
        classifier_activation=None,
    )
    assert model.get_layer("stem").padding == "symmetric"
    assert_logits_close(predict(model, RAW), torch_outputs(net, normalized(RAW)))


@pytest.mark.slow
@pytest.mark.backends(
    "torch", reason="a converted file read back; the layouts' math is tested above"
)
def test_a_converted_file_builds_its_sources_layout(tmp_path):
    # examples/convert_weights.py's file records its model and source: the
    # model is built in torchvision's layout (symmetric padding), whose
    # weights have the same shapes as keras.applications' layout's, and which
    # a plain load_weights into the default layout would silently accept.
    from examples import convert_weights

    net = randomized(torchvision().models.efficientnet_b0(), size=SIZE)
    path = published_file(net, "efficientnet_b0", tmp_path)
    output = tmp_path / "efficientnet_b0.weights.h5"
    convert_weights.convert("efficientnet_b0", "torchvision", path, output)
    model = models.get_model(
        "efficientnet_b0",
        weights=output,
        include_preprocessing=True,
        classifier_activation=None,
    )
    assert model.get_layer("stem").padding == "symmetric"
    raw = np.random.default_rng(3).uniform(0, 255, (1, 224, 224, 3))
    raw = raw.astype("float32")
    theirs = torch_outputs(net, normalized(raw))
    assert_logits_close(predict(model, raw), theirs)
    with pytest.raises(ValueError, match="holds the weights of efficientnet_b0"):
        models.get_model("efficientnet_b1", weights=output)


@pytest.mark.backends("torch", reason="the download's cache lookup: no model math")
def test_torchvision_weights_come_from_the_download_cache(
    resnet18, tmp_path, monkeypatch
):
    # keras.utils.get_file finds the file in its cache and downloads nothing
    # (no network here): the path a user with internet takes after the first
    # download.
    net, path = resnet18
    cache = tmp_path / "models"
    cache.mkdir()
    os.link(path, cache / path.name)
    monkeypatch.setattr(_get_model, "CACHE_DIR", str(tmp_path))
    model = models.get_model(
        "resnet18",
        weights="torchvision",
        input_shape=(SIZE, SIZE, 3),
        classifier_activation=None,
    )
    x = normalized(RAW)
    assert_logits_close(predict(model, x), torch_outputs(net, x))


@pytest.mark.backends(
    "torch",
    reason="the source, layout and preprocessing get_model picks, in Python; "
    "keras.applications' weights give its outputs on every backend in "
    "tests/models (test_models_resnet, test_models_vgg, test_efficientnet)",
)
@pytest.mark.parametrize(
    "name, application, preprocess",
    [
        ("resnet50", "ResNet50", keras.applications.resnet.preprocess_input),
        ("resnet50v2", "ResNet50V2", keras.applications.resnet_v2.preprocess_input),
        ("vgg16", "VGG16", keras.applications.vgg16.preprocess_input),
    ],
)
def test_keras_applications_weights_and_their_preprocessing(
    name, application, preprocess, tmp_path
):
    # A file of keras.applications' model at random weights stands for the
    # ImageNet file that weights="imagenet" downloads.
    source = getattr(keras.applications, application)(
        weights=None, include_top=False, input_shape=(SIZE, SIZE, 3)
    )
    path = tmp_path / f"{name}.weights.h5"
    source.save_weights(path)
    options = dict(include_top=False, input_shape=(SIZE, SIZE, 3))
    model = models.get_model(
        name,
        weights=path,
        weights_source="keras_applications",
        include_preprocessing=True,
        **options,
    )
    theirs = predict(source, preprocess(RAW.copy()))
    np.testing.assert_allclose(
        predict(model, RAW), theirs, atol=1e-4 * np.abs(theirs).max()
    )


@pytest.mark.backends(
    "tensorflow",
    "torch",
    reason="ONNX exports through tf2onnx from TensorFlow, torch.onnx from PyTorch",
)
def test_a_model_with_preprocessing_exports_to_onnx_with_one_input(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime

    from keras_blocks.deploy import export_model

    model = models.get_model(
        "cifar10_cnn", input_shape=(16, 16, 3), include_preprocessing=True
    )
    path = tmp_path / "model.onnx"
    export_model(model, path, "onnx")  # compares the file with Keras
    session = onnxruntime.InferenceSession(str(path))
    assert len(session.get_inputs()) == 1
    raw = RAW[:, :16, :16]
    (ours,) = session.run(None, {session.get_inputs()[0].name: raw})
    np.testing.assert_allclose(ours, predict(model, raw), atol=1e-5)


@EVERY_BACKEND
def test_weights_of_1000_classes_load_into_a_model_of_others(resnet18):
    # timm's create_model(pretrained=True, num_classes=...): every layer but
    # the classifier from the file, the classifier fresh.
    _, path = resnet18
    options = dict(input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    full = models.get_model("resnet18", weights=path, **options)
    ten = models.get_model("resnet18", weights=path, classes=10, **options)
    assert ten.get_layer("predictions").units == 10
    for layer in ten.layers:
        if layer.weights and layer.name != "predictions":
            for a, b in zip(
                layer.weights, full.get_layer(layer.name).weights, strict=True
            ):
                np.testing.assert_array_equal(
                    keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
                )


@pytest.mark.backends("torch", reason="a file's name checked before any load")
def test_another_models_published_file_is_refused_by_name(resnet18):
    _, path = resnet18
    with pytest.raises(
        ValueError,
        match=re.escape(
            "resnet18-f37072fd.pth is torchvision's published file of "
            "resnet18, not of resnet34"
        ),
    ):
        models.get_model("resnet34", weights=path)


@pytest.mark.backends(
    "torch", reason="the normalization's weights folded; the layers run anywhere"
)
def test_keras_applications_efficientnet_file_by_path_gets_the_imagenet_fix(
    tmp_path,
):
    # keras.applications' ImageNet file for EfficientNet holds the standard
    # deviations where the variances go (tensorflow/tensorflow#49930), and
    # weights="imagenet" adds a Rescaling to make up for it; the file loaded
    # by its path gets no Rescaling there. Here it gets the same fix: the
    # model normalizes with ImageNet's mean and standard deviation.
    options = dict(include_top=False, input_shape=(SIZE, SIZE, 3))
    source = keras.applications.EfficientNetB0(weights=None, **options)
    (normalization,) = [  # named normalization_N after other models
        layer for layer in source.layers if type(layer).__name__ == "Normalization"
    ]
    normalization.set_weights(
        [np.array(IMAGENET_MEAN), np.array(IMAGENET_STDDEV), np.array(0)]
    )
    path = tmp_path / "efficientnetb0_notop.weights.h5"
    source.save_weights(path)
    kwargs = dict(weights=path, weights_source="keras_applications", **options)
    raw_in = models.get_model("efficientnet_b0", include_preprocessing=True, **kwargs)
    plain = models.get_model("efficientnet_b0", **kwargs)
    manual = (RAW / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STDDEV)
    expected = predict(plain, manual.astype("float32"))
    np.testing.assert_allclose(
        predict(raw_in, RAW), expected, atol=1e-4 * np.abs(expected).max()
    )
