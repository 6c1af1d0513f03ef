"""`bn_synchronized` reaches every batch normalization of the reference models.

Each family's builder takes `bn_synchronized` and hands it to every layer with
batch normalization: the library's blocks, and the `BatchNormalization` that
ResNet v2 adds after its last block. On TensorFlow every one of them is then
`BatchNormalization(synchronized=True)`; elsewhere the blocks store the flag
and their BN stays as it was (Keras synchronizes on TensorFlow only). Models
are built, not run.
"""

import keras
import pytest

from keras_blocks.models import FAMILIES, get_model, list_models, model_entry
from tests.models.model_checks import families_of, image_shape

TENSORFLOW = keras.config.backend() == "tensorflow"
# One model of each family with batch normalization (AlexNet has none), at its
# smallest input: the plain blocks and the stem BN (resnet18), bottleneck
# blocks with the BN of v2's pre-activations and its `post_bn` (resnet50v2),
# GoogLeNet's auxiliary heads, EfficientNet's stem, MBConv blocks and head,
# EfficientNetV2's fused MBConv blocks.
FAMILY_MEMBERS = (
    "cifar_resnet20",
    "cifar10_cnn",
    "resnet18",
    "resnet50v2",
    "vgg11_bn",
    "googlenet_aux",
    "efficientnet_b0",
    "efficientnet_v2_b0",
)
# Off TensorFlow the builders pass the flag on as they do on it; what differs
# is how the BN is made: in the blocks, and ResNet v2's `post_bn`. JAX
# compiles an initializer per new weight shape (up to a minute for the models
# above), so one model that has both covers it there and on PyTorch.
OFF_TENSORFLOW = ("resnet18v2",)
# Built in about a second; the others take several (the quick tier leaves
# them out).
QUICK = ("cifar_resnet20", "cifar10_cnn")


def build(name, **kwargs):
    size = model_entry(name).min_size
    return get_model(name, input_shape=image_shape(size), classes=10, **kwargs)


def batch_normalizations(model):
    """Every `BatchNormalization` of `model`, inside the blocks too.

    Keras 3.15 has no public walk over sublayers (`Model.layers` is the top
    level; a layer has no `submodules`), so this takes Keras' own
    `_flatten_layers`, as `keras_blocks.distribute` does. The count is checked
    against the moving means among the model's weights, so the walk misses
    none.
    """
    found = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    moving_means = [w for w in model.weights if w.path.endswith("moving_mean")]
    assert len(found) == len(moving_means) > 0
    return found


def flags(model):
    """`bn_synchronized` in the config of every layer that takes it, at any
    depth (the library's blocks and their units)."""
    configs = [
        layer.get_config()
        for layer in model._flatten_layers(include_self=False, recursive=True)
    ]
    return [
        config["bn_synchronized"] for config in configs if "bn_synchronized" in config
    ]


@pytest.mark.backend_independent(reason="names in a table")
def test_family_members_are_named_models():
    assert set(FAMILY_MEMBERS) | set(OFF_TENSORFLOW) <= set(list_models())
    # Every family but AlexNet's, which has no batch normalization.
    assert families_of(FAMILY_MEMBERS) == set(FAMILIES) - {"alexnet"}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=[
                *(
                    ()
                    if name in OFF_TENSORFLOW
                    else [
                        pytest.mark.backends(
                            "tensorflow",
                            reason="the same builder elsewhere; OFF_TENSORFLOW's "
                            "model has both kinds of BN it makes",
                        )
                    ]
                ),
                *(() if name in QUICK else [pytest.mark.slow]),
            ],
        )
        for name in dict.fromkeys((*FAMILY_MEMBERS, *OFF_TENSORFLOW))
    ],
)
def test_bn_synchronized_reaches_every_batch_normalization(name):
    synchronized = build(name, bn_synchronized=True)
    assert synchronized.name == name
    assert flags(synchronized) and all(flags(synchronized))
    # Keras refuses `synchronized=True` off TensorFlow; there the blocks keep
    # the flag and their BN is the usual one.
    bns = batch_normalizations(synchronized)
    assert all(bn.synchronized == TENSORFLOW for bn in bns), name
    if TENSORFLOW:
        # By default, none is.
        default = build(name)
        assert not any(flags(default))
        assert not any(bn.synchronized for bn in batch_normalizations(default))
        assert default.count_params() == synchronized.count_params()


@pytest.mark.parametrize("name", FAMILY_MEMBERS)
@pytest.mark.backend_independent(reason="the builder's argument check, before Keras")
def test_bad_bn_synchronized(name):
    # Checked by the builder, before it builds anything.
    with pytest.raises(
        ValueError, match=r"`bn_synchronized`.*Received: bn_synchronized=1"
    ):
        build(name, bn_synchronized=1)
