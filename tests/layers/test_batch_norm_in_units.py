"""The batch normalization of our units against Keras' own layers.

`ConvBNAct` and the blocks fold their BN into the convolution at inference
and normalize with batch statistics in fewer passes in training (see
keras_blocks/layers/_conv_bn.py). Whatever the route, the results must be
those of `keras.layers.Conv2D` (or `DepthwiseConv2D`) followed by
`keras.layers.BatchNormalization` holding the same weights: outputs, the
gradients Keras' own trainer computes (read from one SGD step at learning
rate 1: the weights move by minus their gradient), and the moving
statistics. Checked on every backend, in both data formats, with grouped and
depthwise convolutions, and in float16 and bfloat16. Keras' layers compute
in channels_last, on the same values transposed (TensorFlow's CPU kernels
run Keras' channels_first convolutions only through XLA, whose compiles
took most of each case's time there). On PyTorch, training gives oneDNN no
strided 1x1 convolution, whose kernel gradient corrupts memory on AVX2 CPUs.
"""

import contextlib
import os
import platform
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_blocks.layers import ConvBNAct, MBConvBlock, ResidualBlock
from tests.layers.layer_checks import (
    assert_close_to_scale,
    random_inputs,
    run_reference,
    to_numpy,
)
from tests.layers.residual_reference import plain_keras_block, transfer_by_name

MOMENTUM, EPSILON = 0.9, 1e-3


def randomize(model, seed=0):
    """Random weights, with BN statistics far from the identity (mean 0,
    variance 1, gamma 1, beta 0 would hide a folding mistake)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape, path = weight.shape, weight.path
        if path.endswith(("gamma", "moving_variance")):
            value = rng.uniform(0.3, 3.0, shape)
        elif path.endswith(("beta", "moving_mean", "bias")):
            value = rng.normal(0.0, 1.0, shape)
        else:
            value = rng.normal(0.0, 0.5, shape)
        weight.assign(value.astype(weight.dtype))


def unit_pair(data_format, groups=1, strides=1, kernel_size=3, use_bias=None):
    """(ConvBNAct in `data_format`, the same unit as Keras' Conv2D + BN + ReLU
    in channels_last, the unit's input shape), built."""
    shape = _shape((4, 7, 7, 8), data_format)
    options = dict(strides=strides, groups=groups)
    ours = ConvBNAct(
        8,
        kernel_size,
        padding="same",
        use_bias=use_bias,
        bn_momentum=MOMENTUM,
        bn_epsilon=EPSILON,
        data_format=data_format,
        **options,
    )
    ours.build(shape)
    reference = keras.Sequential(
        [
            keras.Input((7, 7, 8)),
            keras.layers.Conv2D(
                8, kernel_size, padding="same", use_bias=bool(use_bias), **options
            ),
            _keras_bn(),
            keras.layers.ReLU(),
        ]
    )
    return ours, reference, shape


def depthwise_pair(data_format):
    """(MBConvBlock without expansion, Keras' DepthwiseConv2D + BN + swish,
    then the 1x1 projection + BN, the block's input shape), built."""
    shape = _shape((4, 7, 7, 6), data_format)
    ours = MBConvBlock(
        5,
        kernel_size=3,
        strides=2,
        expand_ratio=1,
        se_ratio=None,
        bn_momentum=MOMENTUM,
        bn_epsilon=EPSILON,
        data_format=data_format,
    )
    ours.build(shape)
    reference = keras.Sequential(
        [
            keras.Input((7, 7, 6)),
            keras.layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False),
            _keras_bn(),
            keras.layers.Activation("swish"),
            keras.layers.Conv2D(5, 1, use_bias=False),
            _keras_bn(),
        ]
    )
    return ours, reference, shape


def block_pair(data_format, preact):
    """(a ResidualBlock with a projection shortcut, the same block in Keras
    layers, the block's input shape), built: pre-activation has a BN alone on
    the block's input; post-activation a BN after its last and its shortcut
    convolutions."""
    shape = _shape((4, 6, 6, 4), data_format)
    ours = ResidualBlock(
        6,
        strides=2,
        preact=preact,
        bn_momentum=MOMENTUM,
        bn_epsilon=EPSILON,
        data_format=data_format,
    )
    ours.build(shape)
    reference = plain_keras_block(
        (4, 6, 6, 4),
        units=[(6, 3, 2, 1)],
        last_kernel_size=3,
        out_channels=6,
        strides=2,
        preact=preact,
        epsilon=EPSILON,
        momentum=MOMENTUM,
    )
    return ours, reference, shape


def _keras_bn():
    return keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPSILON)


def _shape(channels_last_shape, data_format):
    if data_format == "channels_last":
        return channels_last_shape
    batch, height, width, channels = channels_last_shape
    return (batch, channels, height, width)


def _to_last(x, data_format):
    """`x`, in `data_format`, as Keras' channels_last layers take it."""
    return x if data_format == "channels_last" else x.transpose(0, 2, 3, 1)


def _from_last(x, data_format):
    return x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)


def _same_weights(ours, reference):
    randomize(reference)
    if isinstance(ours, ResidualBlock):
        transfer_by_name(reference, ours)
        return
    assert [w.shape for w in ours.weights] == [w.shape for w in reference.weights]
    ours.set_weights(reference.get_weights())


def _as_model(layer, shape):
    inputs = keras.Input(shape[1:])
    return keras.Model(inputs, layer(inputs))


def _one_sgd_step(model, x, target, channels_first):
    """The weights after one SGD step at learning rate 1 on the squared
    error: each trainable weight moved by minus its gradient; the moving
    statistics updated once."""
    # On TensorFlow, ours trains channels_first in XLA, the compiled path
    # Keras' "auto" takes where a GPU is (channels_first's machines).
    jit = channels_first and keras.config.backend() == "tensorflow"
    model.compile(keras.optimizers.SGD(1.0), "mse", jit_compile=jit or "auto")
    loss = model.train_on_batch(x, target)
    return float(loss), [to_numpy(w) for w in model.weights]


PAIRS = {
    "conv": lambda f: unit_pair(f),
    "grouped": lambda f: unit_pair(f, groups=4),
    "strided_with_bias": lambda f: unit_pair(f, strides=2, use_bias=True),
    "strided_1x1": lambda f: unit_pair(f, strides=2, kernel_size=1),
    "depthwise": depthwise_pair,
    "preactivation_block": lambda f: block_pair(f, preact=True),
    "projection_block": lambda f: block_pair(f, preact=False),
}
FORMATS = ("channels_last", "channels_first")


@pytest.mark.slow
@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("pair", PAIRS)
def test_inference_and_training_equal_keras_conv_then_bn(pair, data_format):
    ours, reference, shape = PAIRS[pair](data_format)
    model = _as_model(ours, shape)

    def expected_outputs(x, training):
        last = run_reference(reference, _to_last(x, data_format), training)
        return _from_last(last, data_format)

    # Inference, eager and compiled.
    _same_weights(ours, reference)
    x = random_inputs(shape)
    expected = expected_outputs(x, training=False)
    assert_close_to_scale(ours(x, training=False), expected, 1e-5)
    # predict runs the compiled function (a traced graph, XLA on JAX).
    assert_close_to_scale(model.predict_on_batch(x), expected, 1e-5)

    # Training: the outputs with batch statistics.
    _same_weights(ours, reference)
    x = random_inputs(shape, seed=1)
    expected = expected_outputs(x, training=True)
    assert_close_to_scale(ours(x, training=True), expected, 1e-5)

    # Gradients and moving statistics, through Keras' trainer.
    _same_weights(ours, reference)
    target = random_inputs(expected.shape, seed=2)
    before = reference.get_weights()
    channels_first = data_format == "channels_first"
    loss, weights = _one_sgd_step(model, x, target, channels_first)
    with _without_onednn():
        expected_loss, expected_weights = _one_sgd_step(
            reference,
            _to_last(x, data_format),
            _to_last(target, data_format),
            channels_first=False,
        )
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    for variable, after, expected_after, start in zip(
        reference.weights, weights, expected_weights, before, strict=True
    ):
        # The step (minus the gradient, or the statistics' update), relative
        # to its scale; a bias before a BN has none (the BN cancels it, and
        # both steps are rounding noise): there, relative to the weight's.
        step, expected_step = after - start, expected_after - start
        scale = max(np.abs(expected_step).max(), 1e-3 * np.abs(start).max())
        difference = np.abs(step - expected_step).max() / scale
        assert difference <= 1e-4, f"{variable.path}: {difference:.1e} apart"


@contextlib.contextmanager
def _without_onednn():
    """On PyTorch, oneDNN's CPU kernels off: Keras' own `Conv2D` hands a
    strided 1x1 convolution in channels-last memory to oneDNN, whose gradient
    of the kernel writes out of bounds on AVX2 CPUs (see
    `test_training_gives_pytorch_no_strided_1x1_convolution`)."""
    if keras.config.backend() != "torch":
        yield
        return
    import torch

    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = enabled


def test_a_frozen_bn_uses_and_keeps_its_moving_statistics():
    # Keras' rule: a non-trainable BatchNormalization normalizes with its
    # moving statistics, even in training, and does not update them.
    ours, reference, shape = unit_pair("channels_last")
    _same_weights(ours, reference)
    ours.bn.trainable = False
    statistics = [to_numpy(ours.bn.moving_mean), to_numpy(ours.bn.moving_variance)]
    x = random_inputs(shape)
    assert_close_to_scale(
        ours(x, training=True), run_reference(reference, x, training=False), 1e-5
    )
    np.testing.assert_array_equal(to_numpy(ours.bn.moving_mean), statistics[0])
    np.testing.assert_array_equal(to_numpy(ours.bn.moving_variance), statistics[1])


@pytest.mark.parametrize(
    "policy, tolerance", [("mixed_float16", 5e-3), ("mixed_bfloat16", 3e-2)]
)
@pytest.mark.parametrize("pair", ["conv", "depthwise"])
def test_mixed_precision_within_its_rounding(pair, policy, tolerance):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        ours, reference, shape = PAIRS[pair]("channels_last")
    finally:
        keras.config.set_dtype_policy(previous)
    _same_weights(ours, reference)
    x = random_inputs(shape)
    for training in (False, True):
        actual = to_numpy(keras.ops.cast(ours(x, training=training), "float32"))
        expected = run_reference(reference, x, training=training).astype("float32")
        assert_close_to_scale(actual, expected, tolerance)


def test_weights_changed_after_inference_are_used():
    # Inference keeps nothing that outlives a change of the variables (on
    # PyTorch, the folded kernels are kept while the variables are
    # unchanged): set_weights, a training step, and an assign to one
    # statistic each show in the next prediction.
    ours, reference, shape = unit_pair("channels_last")
    _same_weights(ours, reference)
    model = _as_model(ours, shape)
    x = random_inputs(shape)
    first = model.predict_on_batch(x)

    randomize(reference, seed=5)
    model.set_weights(reference.get_weights())
    assert_close_to_scale(model.predict_on_batch(x), run_reference(reference, x))

    _one_sgd_step(model, x, np.zeros_like(first), channels_first=False)
    reference.set_weights(model.get_weights())
    assert_close_to_scale(model.predict_on_batch(x), run_reference(reference, x))

    ours.bn.moving_variance.assign(to_numpy(ours.bn.moving_variance) * 4.0)
    reference.set_weights(model.get_weights())
    assert_close_to_scale(model.predict_on_batch(x), run_reference(reference, x))


def test_one_value_per_channel_in_training():
    # A batch of one 1x1 image: each channel's variance is 0 and Keras'
    # layer normalizes it to beta (PyTorch's batch_norm refuses it).
    ours = ConvBNAct(8, 1, bn_momentum=MOMENTUM, bn_epsilon=EPSILON)
    shape = (1, 1, 1, 8)
    ours.build(shape)
    reference = keras.Sequential(
        [
            keras.Input(shape[1:]),
            keras.layers.Conv2D(8, 1, use_bias=False),
            _keras_bn(),
            keras.layers.ReLU(),
        ]
    )
    _same_weights(ours, reference)
    x = random_inputs(shape)
    expected = run_reference(reference, x, training=True)
    assert_close_to_scale(ours(x, training=True), expected, 1e-5)
    for ours_weight, weight in zip(ours.weights, reference.weights, strict=True):
        np.testing.assert_allclose(
            to_numpy(ours_weight), to_numpy(weight), rtol=1e-6, atol=1e-7
        )


def _inference(layer, x):
    """An eager inference call; on PyTorch without gradients, where the
    folded kernels are kept between calls."""
    if keras.config.backend() == "torch":
        import torch

        with torch.no_grad():
            return to_numpy(layer(x, training=False))
    return to_numpy(layer(x, training=False))


def test_an_epsilon_changed_after_inference_is_used():
    ours, reference, shape = unit_pair("channels_last")
    _same_weights(ours, reference)
    x = random_inputs(shape)
    _inference(ours, x)
    ours.bn.epsilon = reference.layers[1].epsilon = 2.0
    assert_close_to_scale(_inference(ours, x), run_reference(reference, x))


@pytest.mark.backends("torch", reason="replaces a PyTorch tensor's .data")
def test_a_tensor_given_new_data_after_inference_is_used():
    # `parameter.data = ...` replaces the storage without an in-place write.
    ours, reference, shape = unit_pair("channels_last")
    _same_weights(ours, reference)
    x = random_inputs(shape)
    _inference(ours, x)
    kernel = ours.conv.kernel.value
    kernel.data = kernel.data * 1.5
    reference.layers[0].kernel.assign(to_numpy(ours.conv.kernel))
    assert_close_to_scale(_inference(ours, x), run_reference(reference, x))


def _strided_1x1_convolutions(step):
    """The `conv2d` calls with a 1x1 kernel and strides that `step()` makes
    on the CPU with gradients: (kernel shape, strides)."""
    import torch
    from torch.overrides import TorchFunctionMode

    calls = []

    class Record(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is torch.nn.functional.conv2d and torch.is_grad_enabled():
                names = ("input", "weight", "bias", "stride")
                named = dict(zip(names, args[:4], strict=False), **kwargs)
                stride = named.get("stride", 1)
                stride = (stride, stride) if isinstance(stride, int) else stride
                kernel = named["weight"]
                if (
                    kernel.device.type == "cpu"
                    and tuple(kernel.shape[2:]) == (1, 1)
                    and tuple(stride) != (1, 1)
                ):
                    calls.append((tuple(kernel.shape), tuple(stride)))
            return func(*args, **kwargs)

    with Record():
        step()
    return calls


@pytest.mark.slow
@pytest.mark.backends("torch", reason="records the conv2d calls PyTorch makes")
@pytest.mark.parametrize("data_format", FORMATS)
def test_training_gives_pytorch_no_strided_1x1_convolution(data_format):
    # oneDNN's gradient of the kernel of a strided 1x1 convolution
    # (jit_avx2_1x1_convolution_bwd_weights, PyTorch 2.13) writes past the end
    # of a 272-byte block on AVX2 CPUs (valgrind: "Invalid write of size 8"),
    # and the corrupted heap killed a CI worker on an AMD EPYC with a
    # segmentation fault in a later backward pass. A strided 1x1 convolution
    # is the one without strides on the pixels it reads; ours trains so.
    ours, _, shape = block_pair(data_format, preact=False)  # a 1x1 shortcut
    x = random_inputs(shape)
    model = _as_model(ours, shape)
    target = np.zeros(ours.compute_output_shape(shape), "float32")
    calls = _strided_1x1_convolutions(
        lambda: _one_sgd_step(model, x, target, data_format == "channels_first")
    )
    assert calls == []


# A few training steps of a block whose shortcut is a strided 1x1 convolution
# of 4 channels, in channels-last memory, on oneDNN's AVX2 kernels.
AVX2_TRAINING = """
import keras
import numpy as np

from keras_blocks.layers import ResidualBlock

inputs = keras.Input((6, 6, 4))
model = keras.Model(inputs, ResidualBlock(6, strides=2)(inputs))
model.compile(keras.optimizers.SGD(0.01), "mse")
x = np.random.default_rng(0).normal(size=(4, 6, 6, 4)).astype("float32")
for _ in range(3):
    model.train_on_batch(x, np.zeros((4, 3, 3, 6), "float32"))
"""


@pytest.mark.slow
@pytest.mark.backends("torch", reason="PyTorch's oneDNN kernels")
@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64"),
    reason="PyTorch's oneDNN kernels for x86-64",
)
def test_training_survives_onednn_avx2_kernels():
    import torch

    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("the CPU has no AVX2: oneDNN runs other kernels")
    # An AMD EPYC's kernels on any AVX2 machine: oneDNN reads the cap when
    # PyTorch loads it.
    env = {**os.environ, "KERAS_BACKEND": "torch", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    result = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", AVX2_TRAINING],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # generous: 80-95 s on a loaded two-core machine
    )
    # The fatal error and the traceback, without the list of extension modules.
    stderr = result.stderr.split("\nExtension modules:")[0]
    assert result.returncode == 0, f"exit status {result.returncode}: {stderr[-2000:]}"
