"""GoogLeNet(layout="torchvision") loads torchvision's weights and gives its
logits: torchvision's own network at random weights (every parameter and
buffer), saved as .pth and .safetensors, is the reference.

Its published file has the auxiliary heads (torchvision builds the network
with aux_logits=True to load it), and its input goes through transform_input.
"""

import keras
import numpy as np
import pytest

from keras_blocks.models import googlenet, load_pretrained
from tests.models.model_checks import kernels, trainable_count
from tests.porting.torch_references import (
    assert_logits_close,
    randomized,
    save_state_dict,
    saved_state_dict,
    torch_outputs,
    torchvision,
)

# Odd heights and even widths, so that every pooling's rounding shows: height
# 61 -> 31 -> 15 -> 7 -> 3 -> 2, where "same" pooling gives 31 -> 16 -> 8 ->
# 4 -> 2; width 52 -> 26 -> 13 -> 6 -> 3 -> 2, where floor mode gives 26 -> 12
# -> 5 -> 2 -> 1.
SHAPE = (61, 52, 3)
SOURCE = googlenet.WEIGHTS["torchvision"]


def forward(model, x):
    if keras.config.backend() == "jax":
        # One compiled graph: an eager call compiles each operation (~48 s
        # against ~10 s on two busy cores; building the model takes ~80 s).
        return model.predict(x, verbose=0)
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.fixture(scope="module")
def reference():
    """torchvision's GoogLeNet as its weights load into it, at random weights
    (`randomized` keeps its logits dependent on the image: checked below)."""
    return randomized(
        torchvision().models.googlenet(
            aux_logits=True, transform_input=True, init_weights=True
        ),
        size=SHAPE[:2],
    )


@pytest.mark.slow
def test_googlenet_equals_torchvision(reference, tmp_path):
    with kernels("zeros"):  # every weight is loaded below
        model = googlenet.MODELS["googlenet_torchvision"](
            input_shape=SHAPE, classifier_activation=None
        )
    trunk = [p for n, p in reference.named_parameters() if not n.startswith("aux")]
    assert trainable_count(model) == sum(p.numel() for p in trunk) == 6_624_904
    x = np.random.default_rng(0).normal(size=(2, *SHAPE)).astype("float32")
    theirs = torch_outputs(reference, x)
    # The logits depend on the image: an error on the input's way shows.
    assert np.abs(theirs[0] - theirs[1]).max() > 0.01 * np.abs(theirs).max()
    # The .safetensors file; its .pth reads the same arrays.
    path = saved_state_dict(reference, tmp_path, "googlenet")
    report = load_pretrained(model, path, SOURCE)
    assert {key.split(".")[0] for key in report.ignored} == {"aux1", "aux2"}
    ours = forward(model, x)
    relative = assert_logits_close(ours, theirs)
    print(f"{path}: logits within {relative:.1e} of their scale")  # with -s


@pytest.mark.backend_independent(reason="our table against torchvision's: no Keras")
def test_the_file_table_is_torchvisions():
    # The published file name and top-1 are torchvision's own (its weight
    # enum), and so is the parameter count in the MODELS comment.
    (name, (file, top1, options)), *others = SOURCE.files.items()
    assert name == "googlenet_torchvision" and not others and options == {}
    weights = torchvision().models.get_model_weights("googlenet").DEFAULT
    assert weights.url.rsplit("/", 1)[-1] == file
    assert weights.meta["_metrics"]["ImageNet-1K"]["acc@1"] == top1
    assert weights.meta["num_params"] == 6_624_904
    assert weights.meta["min_size"] == (googlenet.TORCHVISION_MIN_SIZE,) * 2


@pytest.mark.slow
@pytest.mark.backend_independent(
    reason="the mapping's checks run in Python before any weight is assigned"
)
def test_the_paper_googlenet_is_refused(reference, tmp_path):
    _, path = save_state_dict(reference, tmp_path, "googlenet")
    model = googlenet.GoogLeNet(input_shape=SHAPE)
    before = [keras.ops.convert_to_numpy(w) for w in model.weights]
    with pytest.raises(ValueError) as error:
        load_pretrained(model, path, SOURCE)
    assert str(error.value) == (
        "Model 'googlenet' is not torchvision's GoogLeNet: it has no "
        "transform_input layer; 5x5 convolutions in the 5x5 branches "
        "(torchvision's: 3x3); 'same' max pooling (torchvision's: ceil mode); "
        "a 3x3 fourth max pooling (torchvision's: 2x2). Build torchvision's "
        'variant: GoogLeNet(layout="torchvision").'
    )
    for weight, value in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), value)


@pytest.mark.slow
@pytest.mark.backend_independent(
    reason="the mapping leaves the heads out: which layers load is Python"
)
def test_auxiliary_heads_keep_their_weights(reference, tmp_path):
    size = googlenet.TORCHVISION_AUX_MIN_SIZE  # a 5x5 map after 4a
    _, path = save_state_dict(reference, tmp_path, "googlenet")
    model = googlenet.GoogLeNet(
        layout="torchvision", aux_classifiers=True, input_shape=(size, size, 3)
    )
    assert model.get_layer("aux1_pool").output.shape == (None, 1, 1, 512)
    heads = [w for w in model.weights if w.path.startswith("aux")]
    before = [keras.ops.convert_to_numpy(w) for w in heads]
    report = load_pretrained(model, path, SOURCE)
    assert sorted(report.kept) == sorted(
        f"aux{i}{part}"
        for i in (1, 2)
        for part in ("", "_conv/conv", "_conv/bn", "_fc")
    )
    for weight, value in zip(heads, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), value)
