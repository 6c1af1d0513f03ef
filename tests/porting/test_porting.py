"""keras_blocks.porting: PyTorch's own modules are the references for each
conversion; every bad file or mapping gives one clear error and leaves the
model as it was."""

import os
import pickle
import zipfile

import keras
import numpy as np
import pytest

from keras_blocks.porting import Flattened, load_state_dict, read_state_dict
from tests.porting.torch_references import randomized, torch_outputs

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

# load_state_dict checks the whole file against the model (keys, shapes,
# layer types, epsilons) in Python before it assigns anything, and
# read_state_dict reads files into NumPy: a refusal, or a file read, is the
# same under any backend. What a load computes stays on every backend.
REFUSED_BEFORE_ANY_ASSIGNMENT = pytest.mark.backend_independent(
    reason="the loader's checks run in Python before it assigns any weight"
)
READS_INTO_NUMPY = pytest.mark.backend_independent(
    reason="read_state_dict reads files into NumPy arrays, without Keras"
)


def values(model):
    return [keras.ops.convert_to_numpy(w).copy() for w in model.weights]


def assert_unchanged(model, before):
    for weight, value in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), value)


def conv_net(groups=1, depthwise=False):
    """A convolution, BN and ReLU in both libraries, on (8, 8, 4) images."""
    out = 8
    torch_net = torch.nn.Sequential(
        torch.nn.Conv2d(4, out, 3, padding=1, groups=4 if depthwise else groups),
        torch.nn.BatchNorm2d(out),
        torch.nn.ReLU(),
    )
    if depthwise:
        conv = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")
    else:
        conv = keras.layers.Conv2D(out, 3, padding="same", groups=groups)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 4)),
            conv,
            keras.layers.BatchNormalization(epsilon=1e-5),
            keras.layers.ReLU(),
        ]
    )
    mapping = {conv.name: "0", model.layers[1].name: "1"}
    return randomized(torch_net), model, mapping


@pytest.mark.parametrize(
    "kind", ["conv", "grouped", "depthwise"], ids=["conv", "grouped", "depthwise"]
)
def test_convolutions_and_batch_norm_equal_pytorchs(kind, tmp_path):
    torch_net, model, mapping = conv_net(
        groups=2 if kind == "grouped" else 1, depthwise=kind == "depthwise"
    )
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")
    path = tmp_path / "net.safetensors"
    safetensors_torch.save_file(torch_net.state_dict(), path)
    report = load_state_dict(model, path, mapping, bn_epsilon=1e-5)
    assert report.skipped == ["1.num_batches_tracked"]
    ours = keras.ops.convert_to_numpy(model(x, training=False))
    theirs = torch_outputs(torch_net, x).transpose(0, 2, 3, 1)  # NCHW -> NHWC
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_flattened_features_reach_the_dense_layer_in_pytorchs_order(data_format):
    # PyTorch flattens (C, H, W); Keras' Flatten (H, W, C), in both formats.
    torch_net = randomized(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 5, 6))
    )
    shape = (4, 5, 3) if data_format == "channels_last" else (3, 4, 5)
    model = keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Flatten(data_format=data_format),
            keras.layers.Dense(6),
        ]
    )
    spec = Flattened("1", (3, 4, 5))
    load_state_dict(model, torch_net.state_dict(), {model.layers[-1].name: spec})
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype("float32")
    with torch.no_grad():
        theirs = torch_net(torch.from_numpy(x)).numpy()
    ours_x = x.transpose(0, 2, 3, 1) if data_format == "channels_last" else x
    ours = keras.ops.convert_to_numpy(model(ours_x))
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@REFUSED_BEFORE_ANY_ASSIGNMENT
def test_every_problem_in_one_error_and_nothing_changes():
    torch_net, model, mapping = conv_net()
    state = dict(torch_net.state_dict())
    del state["1.running_var"]  # missing
    state["2.weight"] = torch.ones(3)  # unexpected
    state["0.weight"] = torch.ones(8, 4, 5, 5)  # wrong shape
    before = values(model)
    with pytest.raises(ValueError) as info:
        load_state_dict(model, state, mapping, layout_hint="Build it with k=5.")
    message = str(info.value)
    assert "- 1 missing keys (the file lacks them): 1.running_var" in message
    assert "- 1 unexpected keys (nothing in the model takes them): 2.weight" in message
    assert "0.weight: the file has (8, 4, 5, 5)" in message
    assert "needs (8, 4, 3, 3)" in message
    assert message.endswith("The model's weights are unchanged. Build it with k=5.")
    assert_unchanged(model, before)


@REFUSED_BEFORE_ANY_ASSIGNMENT
def test_mapping_must_cover_the_model_and_name_its_layers():
    torch_net, model, mapping = conv_net()
    conv, bn = list(mapping)
    before = values(model)
    with pytest.raises(ValueError, match=rf"leaves out: {bn}\n.*name no layer.*: head"):
        load_state_dict(model, torch_net.state_dict(), {conv: "0", "head": "1"})
    # None keeps a layer as it is; its source keys are then unexpected.
    with pytest.raises(ValueError, match=r"4 unexpected keys .*: 1\.weight, 1\.bias"):
        load_state_dict(model, torch_net.state_dict(), {conv: "0", bn: None})
    report = load_state_dict(
        model, torch_net.state_dict(), {conv: "0", bn: None}, ignore=("1.",)
    )
    assert report.kept == [bn] and len(report.ignored) == 4
    assert_unchanged(model, values(model)[:2] + before[2:])  # BN as it was


def dense_after_flatten():
    torch_net = randomized(
        torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1),
            torch.nn.Flatten(),
            torch.nn.Linear(16 * 4 * 4, 5),
        ),
        size=4,
    )
    model = keras.Sequential(
        [
            keras.Input((4, 4, 3)),
            keras.layers.Conv2D(16, 3, padding="same", name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(5, name="head"),
        ]
    )
    return torch_net, model


@REFUSED_BEFORE_ANY_ASSIGNMENT
def test_a_dense_layer_after_a_flatten_needs_pytorchs_feature_shape():
    # Both mistakes load arrays of the right shapes in the wrong order.
    torch_net, model = dense_after_flatten()
    state, before = torch_net.state_dict(), values(model)
    with pytest.raises(
        ValueError,
        match=r"1 dense layers after a flatten: head reads features flattened from a 4x4 map: map it to Flattened\('2', feature_shape=\(16, 4, 4\)\)",
    ):
        load_state_dict(model, state, {"conv": "0", "head": "2"})
    with pytest.raises(
        ValueError,
        match=r"head: Flattened feature_shape=\(4, 4, 16\), but the model flattens 16 channels of 4x4: feature_shape=\(16, 4, 4\)",
    ):
        load_state_dict(model, state, {"conv": "0", "head": Flattened("2", (4, 4, 16))})
    assert_unchanged(model, before)


def test_a_dense_layer_after_a_flatten_takes_pytorchs_feature_shape():
    torch_net, model = dense_after_flatten()
    state = torch_net.state_dict()
    load_state_dict(model, state, {"conv": "0", "head": Flattened("2", (16, 4, 4))})
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
    ours = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(ours, torch_outputs(torch_net, x), atol=1e-5)


@REFUSED_BEFORE_ANY_ASSIGNMENT
def test_a_batch_norm_epsilon_other_than_the_sources_is_refused():
    torch_net, model, mapping = conv_net()
    before = values(model)
    with pytest.raises(
        ValueError,
        match=r"the source uses 0\.001, and these layers of the model do not: .*\(1e-05\)\. Build the model with the source's epsilon",
    ):
        load_state_dict(model, torch_net.state_dict(), mapping, bn_epsilon=1e-3)
    assert_unchanged(model, before)


@REFUSED_BEFORE_ANY_ASSIGNMENT
def test_layers_it_cannot_convert_and_unbuilt_models_are_refused():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Embedding(4, 2)])
    with pytest.raises(ValueError, match=r"type Embedding; map it to None"):
        load_state_dict(model, {}, {model.layers[0].name: "emb"})
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"Expected a built Keras model"):
        load_state_dict(unbuilt, {}, {})


def test_mixed_precision_models_load_float32_values():
    keras.config.set_dtype_policy("mixed_float16")
    torch_net, model, mapping = conv_net()
    load_state_dict(model, torch_net.state_dict(), mapping)
    kernel = torch_net[0].weight.detach().numpy().transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.weights[0]), kernel)


# Files.


@READS_INTO_NUMPY
def test_pth_and_safetensors_read_the_same(tmp_path):
    torch_net, _, _ = conv_net()
    torch.save(torch_net.state_dict(), tmp_path / "a.pth")
    safetensors_torch.save_file(torch_net.state_dict(), tmp_path / "a.safetensors")
    a, b = (
        read_state_dict(tmp_path / "a.pth"),
        read_state_dict(tmp_path / "a.safetensors"),
    )
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


@READS_INTO_NUMPY
def test_training_checkpoints_and_ddp_prefixes_are_unwrapped(tmp_path):
    state = {"module.fc.weight": torch.ones(2, 3)}
    torch.save({"epoch": 3, "state_dict": state, "arch": "x"}, tmp_path / "c.pth")
    assert list(read_state_dict(tmp_path / "c.pth")) == ["fc.weight"]
    torch.save({"epoch": 3, "weights": state}, tmp_path / "d.pth")
    with pytest.raises(
        ValueError,
        match=r"holds more than tensors: the values of \['epoch', 'weights'\]",
    ):
        read_state_dict(tmp_path / "d.pth")


@READS_INTO_NUMPY
def test_a_pickled_module_is_refused(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")
    with pytest.raises(
        ValueError, match=r"holds more than tensors.*model\.state_dict\(\)"
    ):
        read_state_dict(tmp_path / "module.pth")


class _Payload:
    """Unpickling this runs code: it writes a file."""

    path = None

    def __reduce__(self):
        return (open, (self.path, "w"))


@READS_INTO_NUMPY
def test_code_in_a_pth_file_never_runs(tmp_path):
    _Payload.path = str(tmp_path / "pwned")
    # A torch.save zip whose data.pkl would create a file when unpickled.
    torch.save({"w": torch.ones(1)}, tmp_path / "evil.pth")
    with zipfile.ZipFile(tmp_path / "evil.pth") as source:
        entries = {n: source.read(n) for n in source.namelist()}
    name = next(n for n in entries if n.endswith("data.pkl"))
    entries[name] = pickle.dumps({"w": _Payload()}, protocol=2)
    with zipfile.ZipFile(tmp_path / "evil.pth", "w") as target:
        for entry, data in entries.items():
            target.writestr(entry, data)
    with pytest.raises(ValueError, match=r"holds more than tensors"):
        read_state_dict(tmp_path / "evil.pth")
    assert not os.path.exists(_Payload.path)


@READS_INTO_NUMPY
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_and_corrupt_files_are_named(suffix, tmp_path):
    torch_net, model, mapping = conv_net()
    path = tmp_path / f"net{suffix}"
    if suffix == ".pth":
        torch.save(torch_net.state_dict(), path)
    else:
        safetensors_torch.save_file(torch_net.state_dict(), path)
    data = path.read_bytes()
    before = values(model)
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated or corrupt"):
        load_state_dict(model, path, mapping)
    # Random bytes: each seed breaks PyTorch's reader somewhere else (one
    # stopped its unpickler with an IndexError on an empty stack).
    for seed in range(20):
        noise = np.random.default_rng(seed).integers(0, 256, len(data), "uint8")
        path.write_bytes(noise.tobytes())
        with pytest.raises(ValueError, match=rf"Cannot read .*net{suffix}"):
            load_state_dict(model, path, mapping)
    assert_unchanged(model, before)


@READS_INTO_NUMPY
def test_unknown_suffixes_and_missing_files(tmp_path):
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(
        ValueError,
        match=r"ends in \.safetensors, \.pth, \.pt, \.bin\. Received a file ending in \.npz",
    ):
        read_state_dict(tmp_path / "w.npz")
    with pytest.raises(FileNotFoundError, match=r"No state dict file at"):
        read_state_dict(tmp_path / "absent.pth")
