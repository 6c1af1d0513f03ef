"""Residual blocks written with plain Keras layers, the way keras.applications
writes them, to check `ResidualBlock` and `BottleneckBlock` against."""

import keras
import numpy as np
from keras import layers


def plain_keras_block(
    input_shape,
    units,
    last_kernel_size,
    out_channels,
    strides,
    preact=False,
    shortcut="projection",
    se_channels=None,
    use_bias=None,
    data_format="channels_last",
    epsilon=1e-5,
    momentum=0.99,
):
    """A functional model of one residual block.

    `units` lists the branch's (filters, kernel_size, strides, groups) before
    the last convolution. Layer names mirror the block's weight paths
    ("conv1/bn" is named "conv1_bn") so that `transfer_by_name` can match them.
    """
    axis = -1 if data_format == "channels_last" else 1
    if shortcut == "auto":
        same_shape = strides == 1 and input_shape[axis] == out_channels
        shortcut = "identity" if same_shape else "projection"

    def bias(followed_by_bn):
        return not followed_by_bn if use_bias is None else use_bias

    def bn(name):
        return layers.BatchNormalization(
            axis=axis, epsilon=epsilon, momentum=momentum, name=name
        )

    inputs = keras.Input(input_shape[1:], batch_size=input_shape[0])
    x = inputs
    if preact:
        x = layers.Activation("relu")(bn("preact_bn")(inputs))
    preactivated = x
    # keras.applications adds `[shortcut, x]`; a functional model orders the
    # layers of equal graph depth by that input order, hence its weight order.
    if shortcut == "identity":
        residual = inputs
    elif shortcut == "zero_pad":
        residual = layers.MaxPooling2D(1, strides=strides, data_format=data_format)(
            inputs
        )
        in_channels = input_shape[axis]
        if out_channels > in_channels:
            pad = [(0, 0)] * 4
            pad[axis] = (0, out_channels - in_channels)
            residual = layers.Lambda(lambda t: keras.ops.pad(t, pad))(residual)
    else:
        residual = preactivated
        if shortcut == "avg_pool" and strides > 1:
            residual = layers.AveragePooling2D(
                strides, strides=strides, padding="same", data_format=data_format
            )(residual)
        residual = layers.Conv2D(
            out_channels,
            1,
            strides=strides if shortcut == "projection" else 1,
            use_bias=bias(not preact),
            data_format=data_format,
            name="shortcut_conv",
        )(residual)
        if not preact:
            residual = bn("shortcut_bn")(residual)
    for index, (filters, kernel_size, unit_strides, groups) in enumerate(units, 1):
        if unit_strides > 1 and kernel_size > 1:
            x = layers.ZeroPadding2D(kernel_size // 2, data_format=data_format)(x)
        x = layers.Conv2D(
            filters,
            kernel_size,
            strides=unit_strides,
            padding="valid" if unit_strides > 1 else "same",
            groups=groups,
            use_bias=bias(True),
            data_format=data_format,
            name=f"conv{index}_conv",
        )(x)
        x = layers.Activation("relu")(bn(f"conv{index}_bn")(x))
    last = len(units) + 1
    x = layers.Conv2D(
        out_channels,
        last_kernel_size,
        padding="same",
        use_bias=bias(not preact),
        data_format=data_format,
        name=f"conv{last}",
    )(x)
    if not preact:
        x = bn(f"bn{last}")(x)
    if se_channels:
        s = layers.GlobalAveragePooling2D(data_format=data_format, keepdims=True)(x)
        s = layers.Conv2D(
            se_channels, 1, activation="relu", data_format=data_format, name="se_reduce"
        )(s)
        s = layers.Conv2D(
            out_channels,
            1,
            activation="sigmoid",
            data_format=data_format,
            name="se_expand",
        )(s)
        x = layers.Multiply()([x, s])

    x = layers.Add()([residual, x])
    if not preact:
        x = layers.Activation("relu")(x)
    return keras.Model(inputs, x)


def randomize_weights(model, seed=0):
    """Random values everywhere, positive BN variances: a stricter comparison
    than freshly initialized weights (zero biases, unit variances)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        value = rng.standard_normal(weight.shape).astype("float32") * 0.2
        if weight.path.endswith(("moving_variance", "gamma")):
            value = rng.uniform(0.5, 1.5, weight.shape).astype("float32")
        weight.assign(value)


def transfer_by_name(reference, block):
    """Copies `reference`'s weights into `block`, matched by name."""
    by_name = {
        f"{layer.name}/{w.path.rsplit('/', 1)[1]}": w
        for layer in reference.layers
        for w in layer.weights
    }
    assert len(by_name) == len(block.weights)
    for weight in block.weights:
        sublayer, variable = weight.path.split("/", 1)[1].rsplit("/", 1)
        # A copy: on JAX, a variable assigned another variable shares its
        # buffer, which a training step of either model then donates.
        source = by_name[f"{sublayer.replace('/', '_')}/{variable}"]
        weight.assign(keras.ops.convert_to_numpy(source))
