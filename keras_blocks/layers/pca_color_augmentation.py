"""AlexNet's PCA colour augmentation ("fancy PCA", "lighting" noise)."""

import itertools
import numbers
from typing import Any

import keras
import numpy as np

from keras_blocks import _compat
from keras_blocks import _validation as check
from keras_blocks._compat import ImageAugmentationBase

# The ImageNet statistics of fb.resnet.torch (datasets/imagenet.lua, "computed
# from random subset of ImageNet training images", used by its `Lighting`
# transform with alphastd 0.1), for RGB pixels in [0, 1]. Rows are R, G, B;
# columns are the principal components, largest eigenvalue first. (How they
# were computed is not documented; see `PCAColorAugmentation.imagenet`.)
IMAGENET_EIGENVALUES = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGENVECTORS = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
# `adapt` reads an array this many images at a time, and converts the pixels
# of a batch to float64 this many at a time (24 MB).
_ARRAY_CHUNK = 32
_PIXEL_CHUNK = 2**20


@keras.saving.register_keras_serializable(package="keras_blocks")
class PCAColorAugmentation(ImageAugmentationBase):
    """AlexNet's PCA colour augmentation: a random shift of each image's colour
    along the principal components of the training set's RGB pixels.

    For each image, in training, the layer draws `alpha ~ N(0, alpha_std)`
    (three values) and adds to every pixel the same RGB offset

        offset = eigenvectors @ (alpha * eigenvalues)   # (3,)

    where `eigenvalues` and `eigenvectors` (one per column) are those of the
    3x3 covariance of the training images' RGB values. The paper's argument is
    that object identity is invariant to the intensity and colour of the
    illumination, which moves colours mostly along these components. Nothing
    is clipped, as in the paper and fb.resnet.torch.

    The statistics are given (`eigenvalues` and `eigenvectors`), taken from
    ImageNet (`PCAColorAugmentation.imagenet()`), or computed by `adapt` over
    the training images. Adapted statistics are non-trainable weights, as
    Keras' `keras.layers.Normalization` keeps its adapted mean and variance:
    they are state the layer learns from data, so they travel with the
    weights (`get_weights`, `.keras` files, checkpoints), while the config
    keeps only the constructor's arguments. Given statistics live in the
    config, with no weights.

    In training the layer adds the offset; otherwise (`training=False`, or no
    `training` argument, as for `keras.layers.Dropout`) it returns the input
    unchanged. This differs from Keras' own `RandomContrast` and friends,
    which augment when called without `training`; `keras.layers.Pipeline`
    passes `training=True` by default, so `dataset.map(pipeline)` augments.
    It runs in a model or in a `tf.data` pipeline, on every backend (in
    `tf.data`, use `keras.layers.Pipeline` rather than `keras.Sequential`,
    which Keras does not support there on JAX and PyTorch). Inside `tf.data`
    on JAX or PyTorch, as for Keras' layers, the draws come from a TensorFlow
    generator seeded with `seed`, and adapted statistics are read when the
    pipeline is traced. The output has the compute dtype of the layer's policy
    (`float16` under `mixed_float16`), as for Keras' image preprocessing
    layers; the offset is computed and added in `float32`.

    Pixel scale: the offset is linear in the eigenvalues, while the
    covariance grows with the square of the pixel scale, so statistics adapted
    on images in [0, 255] would shift colours 255 times more, relative to the
    range, than the same images in [0, 1]. The values used in practice are
    those of [0, 1] images, multiplied by 255 (not 255 ** 2) for [0, 255]
    images: GluonCV and MXNet use `[55.46, 4.794, 1.148]`, as
    `imagenet(scale=255.0)` does. So adapt on images in [0, 1], and multiply
    the eigenvalues by 255 for a layer that sees [0, 255].

    Reference: Krizhevsky et al., "ImageNet Classification with Deep
    Convolutional Neural Networks", NeurIPS 2012, section 4.1.

    Weights, in this order, only when the layer is adapted (no `eigenvalues`
    given): `adapted_eigenvalues` `(3,)` and `adapted_eigenvectors` `(3, 3)`,
    zeros (and the layer refuses to run in training) until `adapt`,
    `set_weights` or loading a saved model sets them.

    Args:
        eigenvalues: sequence of 3 floats or None. The covariance's
            eigenvalues, each >= 0; `None` (with `eigenvectors=None`) to
            `adapt` the layer instead.
        eigenvectors: 3x3 nested sequence of floats or None. The matching
            eigenvectors, one per column (`eigenvectors[:, i]` goes with
            `eigenvalues[i]`; rows are R, G, B), as `np.linalg.eigh` returns
            them.
        alpha_std: float. Standard deviation of the normal draws `alpha`,
            >= 0; the paper's 0.1.
        seed: int or None. Seed of the layer's random generator.
        data_format: str or None. `"channels_last"` or `"channels_first"`;
            `None` uses `keras.config.image_data_format()`.
        **kwargs: Base layer arguments (`name`, `dtype`).

    Call arguments:
        data: a 4D batch of RGB images, one 3D image, or a dictionary with
            `"images"` (labels, bounding boxes and segmentation masks pass
            through unchanged).
        training: bool. Add the offset only when True.

    Input shape:
        `(batch, height, width, 3)` or `(height, width, 3)` (channels last);
        `(batch, 3, height, width)` or `(3, height, width)` (channels first).

    Output shape:
        Same as the input.

    Raises:
        ValueError: on an invalid argument; when building on an input without
            3 channels; when called in training before the layer has
            statistics (statistics assigned to its variables directly, as
            `Model.set_weights` on an enclosing model does, are not seen:
            use `adapt`, the layer's own `set_weights` or `load_model`).

    Examples:
        >>> import numpy as np
        >>> import keras
        >>> import keras_blocks
        >>> layer = keras_blocks.layers.PCAColorAugmentation.imagenet(seed=1)
        >>> x = np.full((2, 4, 4, 3), 0.5, dtype="float32")
        >>> bool((keras.ops.convert_to_numpy(layer(x)) == x).all())
        True
        >>> offset = keras.ops.convert_to_numpy(layer(x, training=True)) - x
        >>> bool(np.allclose(offset, offset[:, :1, :1, :]))  # one per image
        True
        >>> adapted = keras_blocks.layers.PCAColorAugmentation(seed=1)
        >>> gray = np.random.default_rng(0).uniform(size=(4, 8, 8, 1))
        >>> adapted.adapt(np.concatenate([gray, gray, gray], axis=-1))
        >>> values = keras.ops.convert_to_numpy(adapted.adapted_eigenvalues)
        >>> (values[1:] < 1e-6).tolist()  # gray images vary along one axis
        [True, True]
    """

    # No `factor` argument: the base class would otherwise add one.
    _USE_BASE_FACTOR = False

    IMAGENET_EIGENVALUES = IMAGENET_EIGENVALUES
    IMAGENET_EIGENVECTORS = IMAGENET_EIGENVECTORS

    def __init__(
        self,
        eigenvalues: Any = None,
        eigenvectors: Any = None,
        alpha_std: float = 0.1,
        seed: int | None = None,
        data_format: str | None = None,
        **kwargs: Any,
    ):
        eigenvalues, eigenvectors = _statistics(eigenvalues, eigenvectors)
        alpha_std = check.non_negative_float("alpha_std", alpha_std)
        seed = check.optional(check.non_negative_int, "seed", seed)
        data_format = check.data_format(data_format)
        super().__init__(data_format=data_format, **kwargs)
        self.eigenvalues = eigenvalues
        self.eigenvectors = eigenvectors
        self.alpha_std = alpha_std
        self.seed = seed
        # The base class looks the generator up under this name.
        self.generator = keras.random.SeedGenerator(seed)
        self._has_statistics = eigenvalues is not None

    @classmethod
    def imagenet(cls, scale: float = 1.0, **kwargs: Any) -> "PCAColorAugmentation":
        """The layer with the ImageNet statistics used in practice.

        fb.resnet.torch's values (its `Lighting` transform; GluonCV and MXNet
        use the same, with the eigenvalues times 255): eigenvalues
        `IMAGENET_EIGENVALUES` `(0.2175, 0.0188, 0.0045)` and eigenvectors
        `IMAGENET_EIGENVECTORS` (rows R, G, B; columns the components), for
        RGB images in [0, 1]. fb.resnet.torch says they were computed from a
        random subset of the ImageNet training images, not how: their sum
        (0.241) is not the total variance (0.153) that the per-channel
        standard deviations listed beside them imply, so take them as the
        values used in practice, not as an exact statistic.

        Args:
            scale: float. The pixels' largest value: 1.0 for images in
                [0, 1], 255.0 for [0, 255]; the eigenvalues are multiplied
                by it.
            **kwargs: The layer's other arguments (`alpha_std`, `seed`,
                `data_format`, `name`, `dtype`).

        Returns:
            A `PCAColorAugmentation`.

        Examples:
            >>> import keras_blocks
            >>> layer = keras_blocks.layers.PCAColorAugmentation.imagenet(255.0)
            >>> [round(v, 2) for v in layer.eigenvalues]  # GluonCV's, rounded
            [55.46, 4.79, 1.15]
        """
        scale = check.positive_float("scale", scale)
        eigenvalues = [value * scale for value in IMAGENET_EIGENVALUES]
        return cls(eigenvalues, IMAGENET_EIGENVECTORS, **kwargs)

    def build(self, input_shape):
        if isinstance(input_shape, dict):
            input_shape = input_shape["images"]
        # None when a tf.data graph calls the layer on another backend:
        # `transform_images` checks the tensors then.
        if input_shape is not None:
            self._check_shape(input_shape)
        if self.eigenvalues is None:
            self.adapted_eigenvalues = self.add_weight(
                name="eigenvalues", shape=(3,), initializer="zeros", trainable=False
            )
            self.adapted_eigenvectors = self.add_weight(
                name="eigenvectors",
                shape=(3, 3),
                initializer="zeros",
                trainable=False,
            )

    def call(self, data, training=False):
        # Identity unless training is True (the base class defaults to True).
        return super().call(data, training=training)

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        # Tracing for shapes (a model being built, or loaded, before its
        # weights are) draws nothing real: only an actual call needs them.
        if not self._has_statistics and not _compat.in_symbolic_call():
            raise ValueError(
                f"Layer '{self.name}' (PCAColorAugmentation) has no colour "
                "statistics: call `adapt(images)` on the training images "
                "before calling it in training, or pass `eigenvalues` and "
                "`eigenvectors` (`PCAColorAugmentation.imagenet()` has "
                "ImageNet's)."
            )
        images = data["images"] if isinstance(data, dict) else data
        shape = self.backend.shape(images)
        batch = shape[0] if len(shape) == 4 else 1
        if seed is None:
            seed = _compat.augmentation_seed_generator(self)
        # `self.backend`, not `keras.ops`: inside tf.data it is TensorFlow.
        alpha = self.backend.random.normal(
            (batch, 3), mean=0.0, stddev=self.alpha_std, seed=seed, dtype="float32"
        )
        return {"alpha": alpha}

    def transform_images(self, images, transformation, training=True):
        self._check_shape(self.backend.core.shape(images))
        images = self.backend.cast(images, self.compute_dtype)
        if not training or transformation is None:
            return images
        b = self.backend
        eigenvalues, eigenvectors = self._current_statistics()
        # offset[n] = eigenvectors @ (alpha[n] * eigenvalues): (batch, 3)
        offset = b.numpy.matmul(
            transformation["alpha"] * eigenvalues, b.numpy.transpose(eigenvectors)
        )
        if self.data_format == "channels_last":
            offset = b.numpy.reshape(offset, (-1, 1, 1, 3))
        else:
            offset = b.numpy.reshape(offset, (-1, 3, 1, 1))
        return b.cast(b.cast(images, "float32") + offset, self.compute_dtype)

    def transform_labels(self, labels, transformation, training=True):
        return labels

    def transform_bounding_boxes(self, bounding_boxes, transformation, training=True):
        return bounding_boxes

    def transform_segmentation_masks(
        self, segmentation_masks, transformation, training=True
    ):
        return segmentation_masks

    def _check_shape(self, shape):
        """RGB images, batched or not; a channel dimension unknown until run
        time (a tensor in `shape`) is not checked."""
        rank_ok = len(shape) in (3, 4)
        channels = shape[_channel_axis(self.data_format)] if rank_ok else None
        if not rank_ok or (isinstance(channels, int) and channels != 3):
            layout = (
                "height, width, 3"
                if self.data_format == "channels_last"
                else "3, height, width"
            )
            raise ValueError(
                f"Invalid input shape for layer '{self.name}' "
                f"(PCAColorAugmentation). Expected RGB images with 3 channels: "
                f"({layout}), with or without a batch axis "
                f"({self.data_format}). Received: input_shape={tuple(shape)}"
            )

    def _current_statistics(self):
        """(eigenvalues, eigenvectors) as float32 tensors of `self.backend`,
        read at every call, so that `set_weights` takes effect."""
        if self.eigenvalues is not None:
            values, vectors = self.eigenvalues, self.eigenvectors
        else:
            # The weights, converted when a tf.data graph runs another backend.
            values = self.convert_weight(self.adapted_eigenvalues)
            vectors = self.convert_weight(self.adapted_eigenvectors)
        return (
            self.backend.convert_to_tensor(values, dtype="float32"),
            self.backend.convert_to_tensor(vectors, dtype="float32"),
        )

    def adapt(self, data: Any, steps: int | None = None) -> None:
        """Computes the eigenvalues and eigenvectors of the images' RGB
        covariance.

        Like `keras.layers.Normalization.adapt`: the covariance is the
        unbiased one (`np.cov`'s) over every pixel of every image, accumulated
        batch by batch (pixel sums and sums of outer products, in float64,
        around the first batch's mean), so a dataset larger than memory works.
        The eigenvalues are sorted largest first, as in the paper; each
        eigenvector's sign is the one `np.linalg.eigh` gives (either sign
        gives the same augmentation, since `alpha` is symmetric about 0).

        Args:
            data: The training images, in the layer's data format: an array
                or tensor of images `(n, ...)`, or a `tf.data.Dataset` or
                other iterable of batches (or of single images); elements
                that are `(images, labels)` tuples or `{"images": ...}`
                dictionaries are read for their images. Pixels in [0, 1] give
                values comparable with the ImageNet ones.
            steps: int or None. How many batches to read from a dataset or
                iterable; `None` reads it to the end (it must be finite).

        Raises:
            ValueError: if the layer was given `eigenvalues`, `steps` is
                invalid or given with an array, the data is empty or its
                images do not have 3 channels.
        """
        if self.eigenvalues is not None:
            raise ValueError(
                f"Layer '{self.name}' (PCAColorAugmentation) was given "
                "`eigenvalues` and `eigenvectors`, which `adapt` would "
                "replace. Create it without them to adapt it."
            )
        steps = check.optional(check.positive_int, "steps", steps)
        # Arrays and eager tensors of any backend (NumPy, TensorFlow, JAX,
        # PyTorch) have both; a tf.data.Dataset or a generator has neither.
        if hasattr(data, "shape") and hasattr(data, "__array__"):
            if steps is not None:
                raise ValueError(
                    "Invalid value for argument `steps`. Expected None for an "
                    "array of images (steps counts the batches of a dataset). "
                    f"Received: steps={steps}"
                )
            if len(data.shape) == 3:  # one image
                batches = iter([data])
            else:
                batches = (
                    data[i : i + _ARRAY_CHUNK]
                    for i in range(0, data.shape[0], _ARRAY_CHUNK)
                )
        else:
            batches = iter(data)
        moments = _Moments()
        for batch in itertools.islice(batches, steps):
            moments.add(self._pixels(batch))
        eigenvalues, eigenvectors = moments.eigen(self.name)
        if not self.built:
            if self.data_format == "channels_last":
                self.build((None, None, None, 3))
            else:
                self.build((None, 3, None, None))
        self.adapted_eigenvalues.assign(eigenvalues)
        self.adapted_eigenvectors.assign(eigenvectors)
        self._has_statistics = True

    def _pixels(self, batch):
        """The RGB values of one batch, (pixels, 3), in the batch's dtype."""
        if isinstance(batch, tuple):
            batch = batch[0]
        if isinstance(batch, dict):
            batch = batch["images"]
        x = np.asarray(keras.ops.convert_to_numpy(batch))
        axis = _channel_axis(self.data_format)
        if x.ndim not in (3, 4) or x.shape[axis] != 3:
            raise ValueError(
                f"Invalid input shape for layer '{self.name}' "
                "(PCAColorAugmentation). `adapt` expects RGB images with 3 "
                f"channels on axis {axis} ({self.data_format}), in batches or "
                f"one at a time. Received: a batch of shape {x.shape}"
            )
        return np.moveaxis(x, axis, -1).reshape(-1, 3)

    def set_weights(self, weights):
        super().set_weights(weights)
        self._refresh_statistics_flag()

    def load_own_variables(self, store):
        super().load_own_variables(store)
        self._refresh_statistics_flag()

    def _refresh_statistics_flag(self):
        # Adapted eigenvectors are orthonormal, never all zero (their initial
        # value), even for images of one colour.
        if self.eigenvalues is None and self.built:
            vectors = keras.ops.convert_to_numpy(self.adapted_eigenvectors)
            self._has_statistics = bool(np.any(vectors != 0))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "eigenvalues": _as_list(self.eigenvalues),
            "eigenvectors": _as_list(self.eigenvectors),
            "alpha_std": self.alpha_std,
            "seed": self.seed,
        }


class _Moments:
    """Running pixel count, sum and sum of outer products, shifted by the
    first pixels' mean so that the sums stay small (no cancellation when the
    covariance is formed)."""

    def __init__(self):
        self.count = 0
        self.shift = None
        self.total = np.zeros(3)
        self.outer = np.zeros((3, 3))

    def add(self, pixels):  # (n, 3)
        # In float64, a slice at a time: a batch of 256 ImageNet images is
        # 38 M pixels, which a float64 copy would make 1 GB.
        for start in range(0, len(pixels), _PIXEL_CHUNK):
            chunk = pixels[start : start + _PIXEL_CHUNK].astype("float64")
            if self.shift is None:
                self.shift = chunk.mean(axis=0)
            centered = chunk - self.shift
            self.count += len(chunk)
            self.total += centered.sum(axis=0)
            self.outer += centered.T @ centered

    def eigen(self, name):
        if self.count < 2:
            raise ValueError(
                f"Layer '{name}' (PCAColorAugmentation) cannot adapt: the "
                f"data holds {self.count} pixels, and a covariance needs at "
                "least 2."
            )
        n = self.count
        covariance = (self.outer - np.outer(self.total, self.total) / n) / (n - 1)
        values, vectors = np.linalg.eigh(covariance)  # ascending
        order = np.argsort(values)[::-1]
        # A covariance has no negative eigenvalues; rounding can give -1e-18.
        return np.maximum(values[order], 0.0), vectors[:, order]


def _channel_axis(data_format):
    # -3 finds the channels of channels_first images with or without a batch.
    return -1 if data_format == "channels_last" else -3


def _statistics(eigenvalues, eigenvectors):
    """Checks the given statistics; returns them as tuples of floats."""
    if eigenvalues is None and eigenvectors is None:
        return None, None
    values = _floats(eigenvalues, (3,))
    if values is None or any(v < 0 for v in values):
        raise check._invalid(
            "eigenvalues",
            "3 non-negative finite numbers (None to adapt the layer, with "
            "eigenvectors=None)",
            eigenvalues,
        )
    vectors = _floats(eigenvectors, (3, 3))
    if vectors is None:
        raise check._invalid(
            "eigenvectors",
            "a 3x3 matrix of finite numbers, one eigenvector per column (None "
            "to adapt the layer, with eigenvalues=None)",
            eigenvectors,
        )
    return tuple(values), tuple(tuple(row) for row in vectors)


def _floats(value, shape):
    """`value` as nested lists of Python floats of `shape`, or None when it
    is not that: numbers only (no strings or booleans), all finite."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if len(shape) == 0:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        return float(value) if ok and np.isfinite(float(value)) else None
    if not isinstance(value, list | tuple) or len(value) != shape[0]:
        return None
    items = [_floats(item, shape[1:]) for item in value]
    return None if any(item is None for item in items) else items


def _as_list(value):
    """Nested tuples as nested lists (JSON), None as None."""
    if isinstance(value, tuple):
        return [_as_list(item) for item in value]
    return value
