"""The registry of `keras_blocks.models`: names, entries, building by name,
the refusals of `get_model`, and `ImagePreprocessing` against the
preprocessing functions it replaces (keras.applications' `preprocess_input`,
torchvision's `Normalize`)."""

import ast
import importlib
import pathlib

import keras
import numpy as np
import pytest

from keras_blocks import models
from keras_blocks.layers import ImagePreprocessing
from keras_blocks.layers.image_preprocessing import IMAGENET_MEAN, IMAGENET_STDDEV

ROOT = pathlib.Path(__file__).resolve().parents[2]
PYTHON_ONLY = pytest.mark.backend_independent(
    reason="the registry's tables and checks run in Python"
)
RAW = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")


@PYTHON_ONLY
def test_every_family_module_registers_its_models():
    names = models.list_models()
    assert len(names) == len(set(names))
    for family in models.FAMILIES:
        module = importlib.import_module(f"keras_blocks.models.{family}")
        listed = [n for n in names if models.model_entry(n).family == family]
        assert listed == list(module.MODELS), family
    assert set(models.FAMILIES) >= {
        "alexnet",
        "cifar10_cnn",
        "cifar_resnet",
        "efficientnet",
        "googlenet",
        "resnet",
        "vgg",
    }


@PYTHON_ONLY
def test_list_models_filters_by_pattern():
    assert models.list_models("vgg*_bn") == [
        "vgg11_bn",
        "vgg13_bn",
        "vgg16_bn",
        "vgg19_bn",
    ]
    assert models.list_models("nothing*") == []
    with pytest.raises(ValueError, match=r"Expected a string such as 'resnet\*'"):
        models.list_models(3)


@PYTHON_ONLY
def test_entries_give_sizes_layouts_and_weight_files():
    entry = models.model_entry("alexnet_torchvision")
    assert (entry.min_size, entry.default_size) == (63, 224)
    assert entry.layouts == ("paper", "torchvision")
    assert entry.weights["torchvision"].file == "alexnet-owt-7be5be79.pth"
    resnet50 = models.model_entry("resnet50")
    assert resnet50.weights["keras_applications"].options == {
        "layout": "keras_applications"
    }
    assert models.model_entry("efficientnet_b3").default_size == 300
    assert models.model_entry("cifar_resnet20").weights == {}


@PYTHON_ONLY
def test_a_misspelled_name_gets_the_nearest():
    with pytest.raises(ValueError, match=r"Did you mean 'resnet50'"):
        models.model_entry("resnt50")


@PYTHON_ONLY
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            dict(weights="imagenet"),
            ValueError,
            "resnet18 has no keras_applications weights to download; resnet18's "
            "published weights: torchvision: resnet18-f37072fd.pth.",
        ),
        (dict(weights="missing.pth"), FileNotFoundError, "No weights file at"),
        (dict(weights=3), ValueError, "Expected None, 'imagenet', 'torchvision'"),
        (dict(weights="ImageNet"), ValueError, "has no keras_applications weights"),
        (
            dict(weights_source="torchvision"),
            ValueError,
            "no weights were given",
        ),
        (dict(depth=50), ValueError, "Invalid argument `depth` for resnet18"),
        (
            dict(include_preprocessing="yes"),
            ValueError,
            "Invalid value for argument `include_preprocessing`",
        ),
    ],
)
def test_get_model_refuses_what_it_cannot_do(kwargs, error, message):
    with pytest.raises(error, match=_literal(message)):
        models.get_model("resnet18", **kwargs)


@PYTHON_ONLY
def test_a_weights_file_of_another_layout_is_refused_before_building(tmp_path):
    path = tmp_path / "efficientnet_b0_rwightman-7f5810bc.pth"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="weights of efficientnet_b0 need layout"):
        models.get_model("efficientnet_b0", weights=path, layout="keras_applications")


@pytest.mark.backends(
    "tensorflow", "jax", "torch", reason="a model built and run on each backend"
)
def test_get_model_builds_with_preprocessing_inside():
    model = models.get_model(
        "resnet18", input_shape=(32, 32, 3), include_preprocessing=True
    )
    names = [layer.name for layer in model.layers[:3]]
    assert names == ["images", "preprocessing", "conv1"]
    plain = models.get_model("resnet18", input_shape=(32, 32, 3))
    assert model.count_params() == plain.count_params()
    plain.set_weights(model.get_weights())  # the same weights, in order
    raw = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    manual = (raw / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STDDEV)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(raw)),
        keras.ops.convert_to_numpy(plain(manual.astype("float32"))),
        atol=1e-5,
    )
    assert models.pyramid_layers(model) == models.pyramid_layers(plain)


@pytest.mark.backends(
    "torch", reason="a saved model read back; the layer's config is backend-free"
)
def test_a_model_with_preprocessing_round_trips_a_keras_file(tmp_path):
    model = models.get_model("cifar_resnet20", classes=10, include_preprocessing=True)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x))
    )
    assert loaded.get_layer("preprocessing").mode == "unit"


@pytest.mark.backends(
    "tensorflow", "jax", "torch", reason="the layer's arithmetic on each backend"
)
@pytest.mark.parametrize("mode", ["torch", "caffe", "tf"])
def test_modes_equal_keras_applications_preprocess_input(mode):
    ours = keras.ops.convert_to_numpy(ImagePreprocessing(mode)(RAW))
    theirs = keras.applications.imagenet_utils.preprocess_input(RAW.copy(), mode=mode)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)


@pytest.mark.backends("torch", reason="torchvision's transforms run on PyTorch")
def test_torch_mode_equals_torchvisions_normalize():
    import torch

    from tests.porting.torch_references import torchvision

    transforms = torchvision().transforms
    nchw = torch.from_numpy(RAW.transpose(0, 3, 1, 2).copy())
    theirs = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STDDEV)(nchw / 255.0)
    ours = ImagePreprocessing("torch", data_format="channels_first")(nchw)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours), theirs.numpy(), atol=1e-5
    )


@pytest.mark.backends(
    "tensorflow", "jax", "torch", reason="integer images cast on each backend"
)
def test_integer_images_and_channels_first():
    uint8 = RAW.astype("uint8")
    ours = ImagePreprocessing("unit")(uint8)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours), uint8 / 255.0, rtol=1e-6
    )
    first = ImagePreprocessing("caffe", data_format="channels_first")(
        RAW.transpose(0, 3, 1, 2)
    )
    last = ImagePreprocessing("caffe", data_format="channels_last")(RAW)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(first).transpose(0, 2, 3, 1),
        keras.ops.convert_to_numpy(last),
        rtol=1e-6,
    )


@PYTHON_ONLY
def test_image_preprocessing_config_and_refusals():
    layer = ImagePreprocessing("tf", data_format="channels_first", name="p")
    assert ImagePreprocessing.from_config(layer.get_config()).get_config() == (
        layer.get_config()
    )
    with pytest.raises(
        ValueError,
        match=_literal(
            "Invalid value for argument `mode`. Expected one of ('torch', "
            "'caffe', 'tf', 'unit'). Received: mode='bgr'"
        ),
    ):
        ImagePreprocessing("bgr")
    with pytest.raises(ValueError, match="with 3 channels"):
        ImagePreprocessing("torch").build((None, 8, 8, 1))
    ImagePreprocessing("unit").build((None, 8, 8, 1))  # x / 255: any channels


@PYTHON_ONLY
def test_examples_use_only_public_names():
    # Everything under examples/ (and the docs' snippets run from it) imports
    # the library's public modules only: no `keras_blocks._x` or `keras_blocks.x._y`.
    private = []
    for path in sorted((ROOT / "examples").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module] + [
                    f"{node.module}.{alias.name}" for alias in node.names
                ]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            for module in modules:
                parts = module.split(".")
                if parts[0] == "keras_blocks" and any(
                    p.startswith("_") for p in parts[1:]
                ):
                    private.append(f"{path.name}: {module}")
    assert not private, private


def _literal(text):
    import re

    return re.escape(text)


@PYTHON_ONLY
def test_the_old_layout_options_forward_with_a_warning():
    from keras_blocks.models import _common

    with pytest.warns(FutureWarning, match=r"ResNet\(layout='keras_applications'\)"):
        layout = _common.renamed_layout("ResNet", "keras_applications", True, "paper")
    assert layout == "keras_applications"
    with pytest.warns(FutureWarning, match=r"AlexNet\(layout='torchvision'\)"):
        layout = _common.renamed_layout("AlexNet", "variant", "torchvision", "paper")
    assert layout == "torchvision"
    assert _common.renamed_layout("ResNet", "keras_applications", None, "x") == "x"
