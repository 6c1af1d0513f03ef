"""Training-time data augmentation as the papers did it, from Keras' own layers.

Each recipe returns an `AugmentationPipeline`, a `keras.layers.Pipeline` of
Keras preprocessing layers (plus `keras_blocks.layers.PCAColorAugmentation`
for AlexNet) that checks the size of its images, so it runs inside a
`tf.data` pipeline on every backend, or as the first layer of a model. Like
Keras' `Pipeline`, it augments unless called with `training=False` (a model
passes the flag: augmented in `fit`, not in `predict` or `evaluate`):

- `cifar_augmentation`: ResNet on CIFAR-10 (He et al. 2016, section 4.2):
  pad 4, random crop, mirror; identity at inference (`training=False`).
- `crop_flip_augmentation`: VGG's, GoogLeNet's and ResNet's ImageNet crop and
  mirror; the centre crop at inference.
- `alexnet_augmentation`: AlexNet's (Krizhevsky et al. 2012, section 4.1):
  random crop, mirror, PCA colour; the centre crop at inference.
- `efficientnet_augmentation`: EfficientNet's (Tan & Le 2019, section 5.2), as
  far as Keras offers it: random crop, mirror, RandAugment; the centre crop
  at inference.

A random crop is a random integer shift (`keras.layers.RandomTranslation`
with nearest-neighbour sampling) followed by `keras.layers.CenterCrop`, so
every image of a batch gets its own crop, inside a model too.
(`keras.layers.RandomCrop` draws one crop position per batch, and at
inference resizes instead of cropping.) The shift is drawn uniformly in
[-margin, margin] and rounded, so the extreme positions come up half as
often as the others. Every position is reached when source and crop sizes
differ by an even number of pixels; otherwise one edge position is not.

The crop recipes take images of `source_size` (default: the crop size x
256 / 224, the ImageNet papers' 256-pixel images for 224-pixel crops; 18 for
16, 37 for 32) and return `crop_size` images. At inference they return the
centre crop, the single-crop evaluation of the papers; see
`keras_blocks.evaluation` for AlexNet's ten crops and GoogLeNet's 144.
Images are floats in [0, 1] (`value_range` where a layer needs one).
"""

import keras

from keras_blocks import _validation as check
from keras_blocks.layers.pca_color_augmentation import PCAColorAugmentation

__all__ = [
    "AugmentationPipeline",
    "alexnet_augmentation",
    "cifar_augmentation",
    "crop_flip_augmentation",
    "efficientnet_augmentation",
    "source_size",
]

# ImageNet models train on crops of 224 from images whose shorter side is 256
# (AlexNet, VGG's single-scale setting, ResNet's evaluation, EfficientNet's
# evaluation crop 224 / (224 + 32)).
SOURCE_RATIO = 256 / 224
CIFAR_PADDING = 4  # He et al. 2016, section 4.2: "4 pixels are padded on each side"


@keras.saving.register_keras_serializable(package="keras_blocks")
class AugmentationPipeline(keras.layers.Pipeline):
    """A `keras.layers.Pipeline` that checks the size of the images it takes.

    The recipes' crops and shifts are sized for one image size (a random crop
    of 16 from 18 shifts by up to 1 pixel): on images of another size they
    would crop the wrong part silently. This raises instead, wherever the
    size is known (a model's input, an array, a batched `tf.data` element).

    Args:
        layers: list of Keras preprocessing layers, applied in order.
        image_size: int or None. The height and width of the images taken;
            None checks nothing.
        data_format: `"channels_last"`, `"channels_first"` or None.
        name: str or None.

    Output shape:
        That of the layers in order, each given the last one's output
        shape: `compute_output_shape` asks each layer's own, and raises the
        error of a call on images of another size.

    Examples:
    >>> import numpy as np, keras
    >>> from keras_blocks.augmentation import AugmentationPipeline
    >>> flip = AugmentationPipeline([keras.layers.RandomFlip("horizontal")], 8)
    >>> tuple(flip(np.zeros((2, 8, 8, 3)), training=True).shape)
    (2, 8, 8, 3)
    >>> crop = AugmentationPipeline([keras.layers.CenterCrop(6, 6)], 8)
    >>> crop.compute_output_shape((None, 8, 8, 3))
    (None, 6, 6, 3)
    """

    def __init__(
        self,
        layers: list,
        image_size: int | None = None,
        data_format: str | None = None,
        name: str | None = None,
    ):
        super().__init__(layers, name=name)
        self.image_size = check.optional(check.positive_int, "image_size", image_size)
        self.data_format = check.data_format(data_format)

    def call(self, inputs, training=True, mask=None):
        images = inputs["images"] if isinstance(inputs, dict) else inputs
        self._check_image_size(tuple(images.shape))
        return super().call(inputs, training=training, mask=mask)

    def compute_output_shape(self, input_shape):
        """The shape through each layer's own `compute_output_shape`, in order."""
        self._check_image_size(tuple(input_shape))
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def compute_output_spec(self, *args, **kwargs):
        # A symbolic call traces `call`, as Keras' Pipeline's does (Layer's
        # own would use compute_output_shape): the size check, dict inputs
        # and the layers' own output dtypes, as in an eager call.
        return super(keras.layers.Layer, self).compute_output_spec(*args, **kwargs)

    def _check_image_size(self, shape):
        if self.image_size is None or len(shape) not in (3, 4):
            return
        first = len(shape) - (3 if self.data_format == "channels_last" else 2)
        size = shape[first : first + 2]
        if any(s is not None and s != self.image_size for s in size):
            raise ValueError(
                f"Invalid input shape for '{self.name}': it takes "
                f"{self.image_size}x{self.image_size} images "
                f"({self.data_format}; a crop recipe's `source_size`). "
                f"Received: images of shape {shape}"
            )

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "data_format": self.data_format,
        }


def source_size(crop_size: int) -> int:
    """The size of the images a crop recipe takes: `crop_size` x 256 / 224.

    Examples:
    >>> from keras_blocks import augmentation
    >>> augmentation.source_size(224), augmentation.source_size(32)
    (256, 37)
    """
    check.positive_int("crop_size", crop_size)
    return round(crop_size * SOURCE_RATIO)


def cifar_augmentation(
    image_size: int = 32,
    padding: int = CIFAR_PADDING,
    *,
    mirror: bool = True,
    seed: int | None = None,
    data_format: str | None = None,
) -> AugmentationPipeline:
    """Pad `padding` pixels with zeros, crop `image_size` at random, mirror.

    He et al. 2016 (CIFAR-10, section 4.2), and the course's CNN. The padding
    and crop are one random integer shift of up to `padding` pixels with zero
    fill, so the images keep their size.

    Args:
        image_size: int. Height and width of the images (and of the output).
        padding: int. The largest shift, in pixels.
        mirror: bool. Mirror half the images (left-right); False for
            images whose mirror is another class (digits, text).
        seed: int or None. Seeds the layers (each its own, derived from it).
        data_format: `"channels_last"`, `"channels_first"` or None (Keras'
            configured image data format).

    Returns:
        The recipe's pipeline; at inference (`training=False`) it returns its
        input.

    Examples:
    >>> import numpy as np
    >>> from keras_blocks import augmentation
    >>> augment = augmentation.cifar_augmentation(seed=0)
    >>> images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3))
    >>> tuple(augment(images, training=True).shape)
    (2, 32, 32, 3)
    >>> bool(np.allclose(augment(images, training=False), images))
    True
    """
    image_size = check.positive_int("image_size", image_size)
    padding = check.non_negative_int("padding", padding)
    seed = check.optional(check.non_negative_int, "seed", seed)
    data_format = check.data_format(data_format)
    steps = [_shift(padding / image_size, _seed(seed, 0), data_format)]
    steps += _mirror(mirror, seed, data_format)
    return AugmentationPipeline(
        steps, image_size, data_format=data_format, name="cifar_augmentation"
    )


def crop_flip_augmentation(
    crop_size: int = 224,
    source_size: int | None = None,
    *,
    mirror: bool = True,
    seed: int | None = None,
    data_format: str | None = None,
) -> AugmentationPipeline:
    """A random `crop_size` crop of `source_size` images, and mirror.

    The ImageNet recipe of VGG (single scale) and GoogLeNet's and ResNet's
    crop and mirror, without their scale and colour changes.

    Args:
        crop_size: int. Height and width of the crops (the model's input).
        source_size: int or None. Height and width of the input images;
            default `source_size(crop_size)` (crop x 256 / 224).
        mirror: bool. Mirror half the images (left-right); False for
            images whose mirror is another class (digits, text).
        seed: int or None. Seeds the layers (each its own, derived from it).
        data_format: `"channels_last"`, `"channels_first"` or None.

    Returns:
        The recipe's pipeline; at inference (`training=False`) it returns the
        centre crop.

    Examples:
    >>> import numpy as np
    >>> from keras_blocks import augmentation
    >>> augment = augmentation.crop_flip_augmentation(16, seed=0)  # from 18
    >>> tuple(augment(np.zeros((2, 18, 18, 3)), training=True).shape)
    (2, 16, 16, 3)
    """
    steps, source_size = _crop_flip(crop_size, source_size, mirror, seed, data_format)
    return AugmentationPipeline(
        steps, source_size, data_format=data_format, name="crop_flip_augmentation"
    )


def alexnet_augmentation(
    crop_size: int = 224,
    source_size: int | None = None,
    *,
    color: PCAColorAugmentation | None = None,
    mirror: bool = True,
    seed: int | None = None,
    data_format: str | None = None,
) -> AugmentationPipeline:
    """AlexNet's: a random crop, its mirror, and PCA colour augmentation.

    Krizhevsky et al. 2012, section 4.1: 224x224 patches of the 256x256
    images and their horizontal reflections, then the RGB intensities shifted
    along the principal components of the training set's pixels.

    Args:
        crop_size: int. Height and width of the crops.
        source_size: int or None. Height and width of the input images;
            default `source_size(crop_size)` (crop x 256 / 224).
        color: `keras_blocks.layers.PCAColorAugmentation` or None. The colour
            step, adapted to your training images
            (`PCAColorAugmentation().adapt(images)`); None uses the ImageNet
            statistics (`PCAColorAugmentation.imagenet()`), for images in
            [0, 1].
        mirror: bool. Mirror half the images (left-right); False for
            images whose mirror is another class (digits, text).
        seed: int or None. Seeds the crop and mirror (the colour layer has
            its own seed).
        data_format: `"channels_last"`, `"channels_first"` or None.

    Returns:
        The recipe's pipeline; at inference (`training=False`) it returns the
        centre crop.

    Examples:
    >>> import numpy as np
    >>> from keras_blocks import augmentation, layers
    >>> images = np.random.default_rng(0).uniform(size=(8, 18, 18, 3))
    >>> color = layers.PCAColorAugmentation(seed=1)
    >>> color.adapt(images)  # the training images' colour statistics
    >>> augment = augmentation.alexnet_augmentation(16, color=color, seed=0)
    >>> tuple(augment(images, training=True).shape)
    (8, 16, 16, 3)
    """
    if color is None:
        color = PCAColorAugmentation.imagenet(
            seed=_seed(seed, 2), data_format=data_format
        )
    elif not isinstance(color, PCAColorAugmentation):
        raise ValueError(
            "Invalid value for argument `color`. Expected a "
            "keras_blocks.layers.PCAColorAugmentation or None. "
            f"Received: color={color!r}"
        )
    data_format = check.data_format(data_format)
    if color.data_format != data_format:
        raise ValueError(
            "Invalid value for argument `color`. Expected a layer with "
            f"data_format={data_format!r}, as the recipe's. Received: a layer "
            f"with data_format={color.data_format!r}"
        )
    steps, source_size = _crop_flip(crop_size, source_size, mirror, seed, data_format)
    return AugmentationPipeline(
        [*steps, color],
        source_size,
        data_format=data_format,
        name="alexnet_augmentation",
    )


def efficientnet_augmentation(
    crop_size: int = 224,
    source_size: int | None = None,
    *,
    num_ops: int = 2,
    factor: float = 0.5,
    value_range: tuple[float, float] = (0, 1),
    mirror: bool = True,
    seed: int | None = None,
    data_format: str | None = None,
) -> AugmentationPipeline:
    """EfficientNet's, as far as Keras offers it: crop, mirror, RandAugment.

    Tan & Le 2019 train with Inception's random-sized crops, mirroring and
    AutoAugment. Keras has neither of the first and last: this recipe uses a
    random crop at one scale and `keras.layers.RandAugment` (Cubuk et al.
    2020, by AutoAugment's authors, which EfficientNet's reference code also
    offers as `--augment_name=randaugment` with 2 operations). At inference it
    is the centre crop of `crop_size` from `crop_size + 32` at 224 (x 256 /
    224), as keras.applications' EfficientNet evaluation.

    Args:
        crop_size: int. Height and width of the crops.
        source_size: int or None. Height and width of the input images;
            default `source_size(crop_size)` (crop x 256 / 224).
        num_ops: int. RandAugment's operations per image.
        factor: float. RandAugment's strength, in [0, 1].
        value_range: `(low, high)`. The range of the images' values:
            `(0, 1)`, or `(0, 255)` for the EfficientNet builders' default
            input (RandAugment's operations clip to it).
        mirror: bool. Mirror half the images (left-right); False for
            images whose mirror is another class (digits, text).
        seed: int or None. Seeds the layers (each its own, derived from it).
        data_format: `"channels_last"`, `"channels_first"` or None.

    Returns:
        The recipe's pipeline; at inference (`training=False`) it returns the
        centre crop.

    Examples:
    >>> import numpy as np
    >>> from keras_blocks import augmentation
    >>> augment = augmentation.efficientnet_augmentation(16, seed=0)
    >>> tuple(augment(np.zeros((2, 18, 18, 3)), training=False).shape)
    (2, 16, 16, 3)
    """
    num_ops = check.positive_int("num_ops", num_ops)
    factor = check.fraction("factor", factor)
    data_format = check.data_format(data_format)
    if (
        not isinstance(value_range, (tuple, list))
        or len(value_range) != 2
        or not all(check._is_real(v) for v in value_range)
        or not value_range[0] < value_range[1]
    ):
        raise ValueError(
            "Invalid value for argument `value_range`. Expected (low, high) "
            f"with low < high. Received: value_range={value_range!r}"
        )
    steps, source_size = _crop_flip(crop_size, source_size, mirror, seed, data_format)
    return AugmentationPipeline(
        [
            *steps,
            keras.layers.RandAugment(
                value_range=tuple(value_range),
                num_ops=num_ops,
                factor=factor,
                seed=_seed(seed, 2),
                data_format=data_format,
            ),
        ],
        source_size,
        data_format=data_format,
        name="efficientnet_augmentation",
    )


def _crop_flip(crop_size, source_size, mirror, seed, data_format):
    crop_size = check.positive_int("crop_size", crop_size)
    if source_size is None:
        source_size = round(crop_size * SOURCE_RATIO)
    elif not check._is_int(source_size) or source_size < crop_size:
        raise ValueError(
            "Invalid value for argument `source_size`. Expected an integer at "
            f"least crop_size={crop_size}, or None. Received: "
            f"source_size={source_size!r}"
        )
    seed = check.optional(check.non_negative_int, "seed", seed)
    data_format = check.data_format(data_format)
    # A shift of up to `margin` pixels each way, then the centre crop: each of
    # the source_size - crop_size + 1 positions per axis (when that is odd; one
    # edge position fewer when even, as 37 -> 32).
    margin = (source_size - crop_size) // 2
    steps = [
        _shift(margin / source_size, _seed(seed, 0), data_format),
        keras.layers.CenterCrop(crop_size, crop_size, data_format=data_format),
        *_mirror(mirror, seed, data_format),
    ]
    return steps, source_size


def _mirror(mirror, seed, data_format):
    """`keras.layers.RandomFlip` (left-right), or nothing."""
    if not check.boolean("mirror", mirror):
        return []
    return [
        keras.layers.RandomFlip(
            "horizontal", seed=_seed(seed, 1), data_format=data_format
        )
    ]


def _shift(factor, seed, data_format):
    """A random integer shift of up to `factor` x size pixels, zero-filled."""
    return keras.layers.RandomTranslation(
        factor,
        factor,
        fill_mode="constant",
        fill_value=0.0,
        interpolation="nearest",  # whole pixels: a crop, not a resampling
        seed=seed,
        data_format=data_format,
    )


def _seed(seed, offset):
    """Each layer its own seed: equal seeds would draw equal numbers."""
    return None if seed is None else seed + offset
