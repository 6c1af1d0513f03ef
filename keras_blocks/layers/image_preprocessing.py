"""The input preprocessing that pretrained weights expect, as a layer."""

from typing import Any

import keras
import numpy as np
from keras import ops

from keras_blocks import _validation as check

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STDDEV = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # keras.applications' "caffe" mode
# mode: (flip RGB to BGR, per-channel scale, per-channel offset): x * s + o.
MODES = {
    # torchvision and timm: x / 255, minus ImageNet's mean, over its std.
    "torch": (
        False,
        tuple(1.0 / (255.0 * s) for s in IMAGENET_STDDEV),
        tuple(-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STDDEV, strict=True)),
    ),
    # keras.applications' ResNet v1 and VGG: BGR, minus ImageNet's BGR mean.
    "caffe": (True, (1.0, 1.0, 1.0), tuple(-m for m in CAFFE_MEAN_BGR)),
    # keras.applications' ResNet v2 (and Inception, MobileNet): to [-1, 1].
    "tf": (False, (1.0 / 127.5,) * 3, (-1.0,) * 3),
    # [0, 1]: what the library's training recipes feed (examples/train.py).
    "unit": (False, (1.0 / 255.0,) * 3, (0.0,) * 3),
}


@keras.saving.register_keras_serializable(package="keras_blocks")
class ImagePreprocessing(keras.layers.Layer):
    """Turns RGB images with pixels in [0, 255] into what weights expect.

    The modes are those of keras.applications' `preprocess_input` and of
    torchvision's transforms, so a model with this layer first takes raw
    images:

    - `"torch"`: `(x / 255 - mean) / std` per channel with ImageNet's mean
      `(0.485, 0.456, 0.406)` and standard deviation `(0.229, 0.224, 0.225)`
      (torchvision's `Normalize` after `ToTensor`; timm's ResNets and
      EfficientNets; `keras.applications.imagenet_utils.preprocess_input(x,
      mode="torch")`).
    - `"caffe"`: RGB to BGR, then minus ImageNet's BGR mean `(103.939,
      116.779, 123.68)` (`keras.applications.resnet.preprocess_input`,
      `vgg16.preprocess_input`).
    - `"tf"`: `x / 127.5 - 1` (`keras.applications.resnet_v2.preprocess_input`).
    - `"unit"`: `x / 255`, pixels in [0, 1].

    The layer holds no weights: its constants are part of the graph, so an
    exported model (ONNX, SavedModel, LiteRT) has one image input.

    Args:
        mode: str. `"torch"`, `"caffe"`, `"tf"` or `"unit"`.
        data_format: str or None. `"channels_last"` or `"channels_first"`;
            None: `keras.config.image_data_format()`.
        **kwargs: Base layer arguments (`name`, `dtype`).

    Call arguments:
        inputs: RGB images, any integer or float dtype, pixels in [0, 255].

    Input shape:
        4D tensor `(batch, height, width, 3)` (channels_last) or
        `(batch, 3, height, width)` (channels_first); any channels for
        `"unit"`.

    Output shape:
        Same as the input, in the layer's compute dtype.

    Raises:
        ValueError: on an unknown `mode` or `data_format`, or an input
            without 3 channels (but for `"unit"`).

    Examples:
        >>> import numpy as np
        >>> import keras
        >>> from keras_blocks.layers import ImagePreprocessing
        >>> x = np.array([[[[255.0, 0.0, 127.5]]]], dtype="float32")
        >>> y = ImagePreprocessing("tf")(x)
        >>> keras.ops.convert_to_numpy(y).tolist()
        [[[[1.0, -1.0, 0.0]]]]
    """

    def __init__(self, mode: str, data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.mode = check.one_of("mode", mode, tuple(MODES))
        self.data_format = check.data_format(data_format)
        self.supports_masking = False

    def build(self, input_shape):
        axis = check.channel_axis(self.data_format)
        if len(input_shape) != 4 or (self.mode != "unit" and input_shape[axis] != 3):
            raise ValueError(
                f"ImagePreprocessing({self.mode!r}) expects RGB images of shape "
                f"{_layout(self)} with 3 channels (its constants are per RGB "
                "channel; mode 'unit', x / 255, takes any channels). Received: "
                f"input_shape={tuple(input_shape)}"
            )
        channels = input_shape[axis]  # 3 but for "unit"
        self.input_spec = keras.InputSpec(
            ndim=4, axes={} if channels is None else {axis: channels}
        )

    def call(self, inputs):
        flip, scale, offset = MODES[self.mode]
        x = ops.cast(inputs, self.compute_dtype)
        axis = check.channel_axis(self.data_format)
        if flip:
            x = ops.flip(x, axis=axis)  # RGB -> BGR
        if self.mode == "unit":  # one scale for every channel
            scale, offset = scale[:1], offset[:1]
        channels = len(scale)
        shape = (channels,) if self.data_format == "channels_last" else (channels, 1, 1)
        scale = np.reshape(np.asarray(scale, "float32"), shape)
        offset = np.reshape(np.asarray(offset, "float32"), shape)
        return x * ops.cast(scale, x.dtype) + ops.cast(offset, x.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "mode": self.mode,
            "data_format": self.data_format,
        }


def _layout(layer):
    if layer.data_format == "channels_last":
        return "(batch, height, width, 3)"
    return "(batch, 3, height, width)"
