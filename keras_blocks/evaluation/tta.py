"""Test-time augmentation: average a classifier's softmax over crops of each image.

Three schemes, as the papers evaluate:

- `"center_crop"`: one crop, the centre (single-crop evaluation).
- `"ten_crop"`: AlexNet's (Krizhevsky et al. 2012, section 4.1): the four
  corner crops and the centre crop, and their horizontal mirrors, in
  torchvision's `TenCrop` order and content (the five crops of the image,
  then the five crops of the mirrored image).
- `"multi_crop"`: GoogLeNet's (Szegedy et al. 2015, section 7): the image
  resized to 4 scales (shorter side 256, 288, 320 and 352 for 224-pixel
  crops), the left, centre and right squares of each (top, centre and bottom
  for portrait images), of each square the four corners, the centre and the
  square resized to the crop size, and their mirrors: 4 x 3 x 6 x 2 = 144
  crops.

Every centre (the centre crop, `multi_crop`'s centre square) is where
torchvision's `CenterCrop` puts it: half the margin, rounded to the nearest
integer with halves to even (Python's `round`), so a margin of 3 starts the
crop at 2 and a margin of 5 at 2. Keras' `CenterCrop` floors half the
margin: the two differ by one pixel where a margin is 3 modulo 4.

The crops are taken in NumPy (a crop is a slice; only `multi_crop`'s scales
resize, with `keras.ops.image.resize`), and the model runs on one crop of a
batch at a time with `predict_on_batch`, so memory stays that of one batch
whatever the number of crops, on every backend.
"""

import collections
from typing import Any

import keras
import numpy as np

from keras_blocks import _validation as check

SCHEMES = ("center_crop", "ten_crop", "multi_crop")
# GoogLeNet's shorter sides for 224-pixel crops; other crop sizes scale them.
MULTI_CROP_SCALES = (256, 288, 320, 352)
PAPER_CROP = 224
SQUARES = (1, 3)
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "lanczos3", "lanczos5", "area")

TTAResult = collections.namedtuple("TTAResult", ["predictions", "accuracy"])
TTAResult.__doc__ = """What `evaluate_with_tta` returns.

Attributes:
    predictions: NumPy array `(images, classes)`: the softmax averaged over
        the crops.
    accuracy: float. The share of images whose averaged softmax ranks the
        label first.

Examples:
>>> import numpy as np
>>> from keras_blocks.evaluation import TTAResult
>>> predictions, accuracy = TTAResult(np.eye(2), 1.0)
>>> accuracy
1.0
"""


def ten_crop(
    images: Any,
    crop_size: int | tuple[int, int],
    data_format: str | None = None,
    mirror: bool = True,
) -> np.ndarray:
    """AlexNet's ten crops of a batch of images.

    Args:
        images: array `(batch, height, width, channels)` (or channels first),
            at least `crop_size` high and wide.
        crop_size: int or `(height, width)`. The size of the crops.
        data_format: `"channels_last"`, `"channels_first"` or None (Keras'
            configured image data format).
        mirror: bool. Add the five mirrored crops; False gives five crops,
            for images whose mirror is another class (digits, text).

    Returns:
        NumPy array `(10, batch, crop_height, crop_width, channels)` (or
        channels first), torchvision's `TenCrop` in order and content: top
        left, top right, bottom left, bottom right and centre of the image,
        then the same five of its horizontal mirror, i.e. the mirrors of
        the top right, top left, bottom right, bottom left and centre crops.
        The centre crop starts at half the margin rounded as torchvision's
        `CenterCrop` rounds it (halves to even); with an odd horizontal
        margin the mirrored centre is therefore not the mirror of the centre
        crop but one column beside it, as in torchvision.

    Examples:
    >>> import numpy as np
    >>> from keras_blocks.evaluation import ten_crop
    >>> crops = ten_crop(np.zeros((2, 9, 9, 3)), 7, "channels_last")
    >>> crops.shape
    (10, 2, 7, 7, 3)
    """
    options = {"mirror": mirror}
    return np.stack(list(_crops(images, "ten_crop", crop_size, data_format, options)))


def multi_crop(
    images: Any,
    crop_size: int | tuple[int, int],
    scales: tuple[int, ...] | None = None,
    squares: int = 3,
    mirror: bool = True,
    interpolation: str = "bilinear",
    data_format: str | None = None,
) -> np.ndarray:
    """GoogLeNet's crops of a batch of images (144 by default).

    Args:
        images: array `(batch, height, width, channels)` (or channels first).
        crop_size: int or `(height, width)`. The size of the crops.
        scales: tuple of ints or None. The shorter side each scale resizes the
            images to, each at least the crop size; None gives the paper's
            256, 288, 320, 352, multiplied by `crop_size / 224` and rounded.
            The longer side becomes `round(longer * scale / shorter)`: the
            nearest integer, halves to even (torchvision's `Resize` truncates
            it instead, so the two can differ by one pixel).
        squares: 3 (the paper's: left, centre, right) or 1 (centre).
        mirror: bool. Add the horizontal mirror of every crop.
        interpolation: str. `keras.ops.image.resize`'s interpolation, with
            antialiasing.
        data_format: `"channels_last"`, `"channels_first"` or None.

    Returns:
        NumPy array `(crops, batch, crop_height, crop_width, channels)`, in
        the order scale, square, crop (top left, top right, bottom left,
        bottom right, centre, whole square), then the horizontal mirror of
        each crop in the same order. The centre square and the centre crops
        start at half the margin rounded as torchvision's `CenterCrop`
        rounds it (halves to even; Keras' `CenterCrop` floors), and each
        square's five crops are torchvision's `FiveCrop` of the square.

    Examples:
    >>> import numpy as np
    >>> from keras_blocks.evaluation import multi_crop
    >>> multi_crop(np.zeros((1, 16, 16, 3)), 14, data_format="channels_last").shape
    (144, 1, 14, 14, 3)
    """
    options = {
        "scales": scales,
        "squares": squares,
        "mirror": mirror,
        "interpolation": interpolation,
    }
    return np.stack(list(_crops(images, "multi_crop", crop_size, data_format, options)))


def crop_count(
    scheme: str,
    scales: tuple[int, ...] | None = None,
    squares: int = 3,
    mirror: bool = True,
) -> int:
    """How many crops `scheme` evaluates per image (1, 10, or 144 by default).

    Examples:
    >>> from keras_blocks.evaluation import crop_count
    >>> crop_count("ten_crop"), crop_count("multi_crop")
    (10, 144)
    >>> crop_count("ten_crop", mirror=False)
    5
    """
    check.one_of("scheme", scheme, SCHEMES)
    if scheme == "center_crop":
        return 1
    if scheme == "ten_crop":
        return 10 if mirror else 5
    count = len(MULTI_CROP_SCALES) if scales is None else len(scales)
    return count * squares * 6 * (2 if mirror else 1)


def predict_with_tta(
    model: keras.Model,
    images: Any,
    scheme: str = "ten_crop",
    *,
    crop_size: int | tuple[int, int] | None = None,
    batch_size: int = 32,
    from_logits: bool = False,
    data_format: str | None = None,
    **options: Any,
) -> np.ndarray:
    """The softmax of `model` averaged over the crops of `scheme`, per image.

    Args:
        model: a Keras classifier. A model with several outputs (such as
            GoogLeNet with its auxiliary heads) is read at its first.
        images: array `(images, height, width, channels)` (or channels
            first), or an iterable of such batches (a `tf.data.Dataset` of
            images, or of `(images, labels)` whose labels are ignored).
        scheme: `"center_crop"`, `"ten_crop"` or `"multi_crop"`.
        crop_size: int, `(height, width)` or None (the model's input size).
        batch_size: int. Images per model call, for array inputs.
        from_logits: bool. Whether the model outputs logits (a softmax is
            then applied to each crop's output before averaging).
        data_format: `"channels_last"`, `"channels_first"` or None.
        **options: `mirror` (`ten_crop` and `multi_crop`: False leaves out
            the mirrored crops), and `multi_crop`'s `scales`, `squares` and
            `interpolation`.

    Returns:
        NumPy array `(images, classes)`.

    Examples:
    >>> import keras, numpy as np
    >>> from keras_blocks.evaluation import predict_with_tta
    >>> model = keras.Sequential([
    ...     keras.Input((8, 8, 3)),
    ...     keras.layers.GlobalAveragePooling2D(),
    ...     keras.layers.Dense(2, activation="softmax"),
    ... ])
    >>> images = np.random.default_rng(0).uniform(size=(4, 10, 10, 3))
    >>> predict_with_tta(model, images, "multi_crop", squares=1).shape
    (4, 2)
    """
    predictions, _ = _run(
        model,
        images,
        None,
        scheme,
        crop_size,
        batch_size,
        from_logits,
        data_format,
        options,
    )
    return predictions


def evaluate_with_tta(
    model: keras.Model,
    images: Any,
    labels: Any = None,
    scheme: str = "ten_crop",
    *,
    crop_size: int | tuple[int, int] | None = None,
    batch_size: int = 32,
    from_logits: bool = False,
    data_format: str | None = None,
    **options: Any,
) -> "TTAResult":
    """Accuracy of `model` with its softmax averaged over the crops of `scheme`.

    Args:
        model: a Keras classifier (see `predict_with_tta`).
        images: array `(images, height, width, channels)` (or channels
            first) with `labels`, or an iterable of `(images, labels)`
            batches such as a `tf.data.Dataset`.
        labels: class ids `(images,)` or `(images, 1)` (integers, or floats
            that are whole numbers) or one-hot rows `(images, classes)`;
            None when `images` yields `(images, labels)` batches.
        scheme: `"center_crop"`, `"ten_crop"` or `"multi_crop"`.
        crop_size: int, `(height, width)` or None (the model's input size).
        batch_size: int. Images per model call, for array inputs.
        from_logits: bool. Whether the model outputs logits.
        data_format: `"channels_last"`, `"channels_first"` or None.
        **options: as `predict_with_tta`'s (`mirror`, `scales`, `squares`,
            `interpolation`).

    Returns:
        `TTAResult(predictions, accuracy)`.

    Raises:
        ValueError: for labels that are not class ids (whole numbers) or
            one-hot rows, not one per image, or not among the model's
            classes, before the model runs where `labels` is an array.

    Examples:
    >>> import keras, numpy as np
    >>> from keras_blocks.evaluation import evaluate_with_tta
    >>> model = keras.Sequential([
    ...     keras.Input((8, 8, 3)),
    ...     keras.layers.GlobalAveragePooling2D(),
    ...     keras.layers.Dense(2, activation="softmax"),
    ... ])
    >>> images = np.random.default_rng(0).uniform(size=(4, 10, 10, 3))
    >>> result = evaluate_with_tta(model, images, np.array([0, 1, 0, 1]))
    >>> result.predictions.shape
    (4, 2)
    """
    if labels is None and _is_array(images):
        raise ValueError(
            "Invalid value for argument `labels`. Expected the labels of "
            "`images`, or None when `images` yields (images, labels) batches. "
            "Received: labels=None"
        )
    return TTAResult(
        *_run(
            model,
            images,
            labels,
            scheme,
            crop_size,
            batch_size,
            from_logits,
            data_format,
            options,
            need_labels=True,
        )
    )


def _run(
    model,
    images,
    labels,
    scheme,
    crop_size,
    batch_size,
    from_logits,
    data_format,
    options,
    need_labels=False,
):
    check.one_of("scheme", scheme, SCHEMES)
    batch_size = check.positive_int("batch_size", batch_size)
    check.boolean("from_logits", from_logits)
    data_format = check.data_format(data_format)
    allowed = {
        "center_crop": set(),
        "ten_crop": {"mirror"},
        "multi_crop": {"scales", "squares", "mirror", "interpolation"},
    }[scheme]
    if set(options) - allowed:
        raise ValueError(
            f"Unexpected keyword arguments for scheme={scheme!r}: "
            f"{sorted(set(options) - allowed)}. scheme='ten_crop' takes mirror; "
            "scheme='multi_crop' takes scales, squares, mirror and interpolation."
        )
    if crop_size is None:
        crop_size = _model_input_size(model, data_format)
    count = crop_count(
        scheme,
        options.get("scales"),
        options.get("squares", 3),
        options.get("mirror", True),
    )
    sums, all_labels = [], []
    for batch, batch_labels in _batches(images, labels, batch_size, need_labels):
        total = None
        for crop in _crops(batch, scheme, crop_size, data_format, options):
            output = model.predict_on_batch(crop)
            if isinstance(output, dict):  # auxiliary heads: the first output
                output = next(iter(output.values()))
            elif isinstance(output, (list, tuple)):
                output = output[0]
            output = keras.ops.convert_to_numpy(output).astype("float64")
            if from_logits:
                output = _softmax(output)
            total = output if total is None else total + output
        sums.append(total / count)
        if batch_labels is not None:
            all_labels.append(batch_labels)
    if not sums:
        raise ValueError(
            "Invalid value for argument `images`. Expected at least one image."
        )
    predictions = np.concatenate(sums).astype("float32")
    if not need_labels:
        return predictions, None
    truth = np.concatenate(all_labels)
    if len(truth) != len(predictions):
        raise ValueError(
            f"Invalid value for argument `labels`. Expected one label per image "
            f"({len(predictions)}). Received: {len(truth)} labels"
        )
    classes = predictions.shape[-1]
    if truth.size and (truth.min() < 0 or truth.max() >= classes):
        raise ValueError(
            "Invalid value for argument `labels`. Expected class ids in "
            f"[0, {classes}) (the model's classes). Received: labels from "
            f"{truth.min()} to {truth.max()}"
        )
    accuracy = float(np.mean(np.argmax(predictions, axis=-1) == truth))
    return predictions, accuracy


def _batches(images, labels, batch_size, need_labels):
    """(images, labels or None) NumPy batches, from arrays or an iterable."""
    if _is_array(images):
        images = keras.ops.convert_to_numpy(images)
        if labels is not None:
            if isinstance(labels, str) or np.ndim(labels) == 0:
                raise ValueError(
                    "Invalid value for argument `labels`. Expected one class id "
                    "(or one-hot row) per image; the scheme goes in "
                    f"`scheme=`. Received: labels={labels!r}"
                )
            labels = keras.ops.convert_to_numpy(labels)
            if len(labels) != len(images):
                raise ValueError(
                    "Invalid value for argument `labels`. Expected one label per "
                    f"image ({len(images)}). Received: {len(labels)} labels"
                )
            labels = _class_ids(labels)  # before any model call
        for start in range(0, len(images), batch_size):
            stop = start + batch_size
            yield images[start:stop], None if labels is None else labels[start:stop]
        return
    if labels is not None:
        raise ValueError(
            "Invalid value for argument `labels`. Expected None when `images` "
            "is a dataset or iterable of batches (it yields the labels). "
            f"Received: labels of type {type(labels).__name__}"
        )
    start = 0  # the index of the batch's first label, for error messages
    for element in images:
        if isinstance(element, (tuple, list)):
            batch, batch_labels = element[0], element[1] if len(element) > 1 else None
        else:
            batch, batch_labels = element, None
        if need_labels and batch_labels is None:
            raise ValueError(
                "Invalid value for argument `images`. Expected (images, labels) "
                "batches to evaluate; received batches of images only."
            )
        if batch_labels is not None:
            batch_labels = _class_ids(keras.ops.convert_to_numpy(batch_labels), start)
            start += len(batch_labels)
        yield keras.ops.convert_to_numpy(batch), batch_labels


def _crops(images, scheme, crop_size, data_format, options=None):
    """Yields each crop of the batch `images` (NumPy), one batch per crop."""
    images = keras.ops.convert_to_numpy(images)
    data_format = check.data_format(data_format)
    crop = check.size_pair("crop_size", crop_size)
    if images.ndim != 4:
        raise ValueError(
            "Invalid value for argument `images`. Expected a batch of images "
            f"(a 4D array). Received: images.shape={images.shape}"
        )
    if data_format == "channels_first":  # crop in channels_last, give back as given
        images = images.transpose(0, 2, 3, 1)
    height, width = images.shape[1:3]
    if scheme == "multi_crop":
        crops = _multi_crops(images, crop, **(options or {}))
    else:
        if height < crop[0] or width < crop[1]:
            raise ValueError(
                f"Invalid value for argument `crop_size`. Expected at most the "
                f"images' size ({height}, {width}, read as {data_format}: "
                "pass `data_format` if the images are laid out otherwise). "
                f"Received: crop_size={crop_size}"
            )
        boxes = _corner_boxes(height, width, crop)
        if scheme == "center_crop":
            boxes = boxes[-1:]
        sources = [images]
        if scheme == "ten_crop" and check.boolean(
            "mirror", (options or {}).get("mirror", True)
        ):
            # torchvision's TenCrop: the five crops of the mirrored image, so
            # its top left is the mirrored top right, and its centre is the
            # mirror's (one column off the mirrored centre crop where the
            # horizontal margin is odd).
            sources.append(images[:, :, ::-1, :])
        crops = (_take(source, box) for source in sources for box in boxes)
    for batch in crops:
        if data_format == "channels_first":
            batch = batch.transpose(0, 3, 1, 2)
        yield np.ascontiguousarray(batch)


def _corner_boxes(height, width, crop):
    """(top, left, height, width) of the four corners and the centre
    (torchvision's FiveCrop)."""
    h, w = crop
    return [
        (0, 0, h, w),
        (0, width - w, h, w),
        (height - h, 0, h, w),
        (height - h, width - w, h, w),
        (_centre(height - h), _centre(width - w), h, w),
    ]


def _centre(margin):
    """torchvision's CenterCrop offset: half the margin, rounded to the
    nearest integer, halves to even (Keras' CenterCrop floors it)."""
    return round(margin / 2)


def _take(images, box):
    top, left, h, w = box
    return images[:, top : top + h, left : left + w, :]


def _multi_crops(
    images, crop, scales=None, squares=3, mirror=True, interpolation="bilinear"
):
    height, width = images.shape[1:3]
    scales = _scales(scales, crop)
    check.choice("squares", squares, SQUARES)
    check.boolean("mirror", mirror)
    check.one_of("interpolation", interpolation, INTERPOLATIONS)
    crops = []
    for scale in scales:
        # The shorter side to `scale`, the aspect ratio kept, the longer one
        # rounded to nearest (torchvision's Resize truncates it).
        shorter = min(height, width)
        size = (round(height * scale / shorter), round(width * scale / shorter))
        resized = _resize(images, size, interpolation)
        for top, left in _squares(size, scale, squares):
            square = resized[:, top : top + scale, left : left + scale, :]
            crops.extend(
                _take(square, box) for box in _corner_boxes(scale, scale, crop)
            )
            crops.append(_resize(square, crop, interpolation))  # the whole square
    if mirror:
        crops += [batch[:, :, ::-1, :] for batch in crops]
    return crops


def _squares(size, side, squares):
    """(top, left) of the squares of `side` along the longer axis of `size`."""
    height, width = size
    if squares == 1:
        return [(_centre(height - side), _centre(width - side))]
    if width >= height:  # left, centre, right
        return [(0, left) for left in (0, _centre(width - side), width - side)]
    return [(top, 0) for top in (0, _centre(height - side), height - side)]


def _scales(scales, crop):
    smallest = max(crop)
    if scales is None:
        return tuple(
            max(smallest, round(s * smallest / PAPER_CROP)) for s in MULTI_CROP_SCALES
        )
    if (
        not isinstance(scales, (tuple, list))
        or not scales
        or not all(check._is_int(s) and s >= smallest for s in scales)
    ):
        raise ValueError(
            "Invalid value for argument `scales`. Expected a non-empty tuple of "
            f"integers, each at least the crop size ({smallest}). "
            f"Received: scales={scales!r}"
        )
    return tuple(int(s) for s in scales)


def _resize(images, size, interpolation):
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    resized = keras.ops.image.resize(
        images,
        size,
        interpolation=interpolation,
        antialias=interpolation != "nearest",
        data_format="channels_last",
    )
    return keras.ops.convert_to_numpy(resized).astype(images.dtype)


def _model_input_size(model, data_format):
    try:  # functional and Sequential models, and keras_blocks' Ensemble
        shape = model.input_shape
    except (AttributeError, ValueError):
        shape = None
    if isinstance(shape, list):  # several inputs: not an image classifier
        shape = None
    if shape is None or len(shape) != 4:
        raise ValueError(
            "Invalid value for argument `crop_size`. Expected a size when the "
            "model has no 4D input shape. Received: crop_size=None"
        )
    size = shape[1:3] if data_format == "channels_last" else shape[2:4]
    if None in size:
        raise ValueError(
            "Invalid value for argument `crop_size`. Expected a size when the "
            f"model's input size is unknown ({tuple(shape)}). Received: crop_size=None"
        )
    return tuple(int(s) for s in size)


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _class_ids(labels, start=0):
    """int64 class ids from class ids (any shape of one per image: `(n,)`,
    `(n, 1)`) or one-hot rows `(n, classes)`; refuses anything else rather
    than truncating it. `start`: the index of `labels[0]` among all labels."""
    labels = np.asarray(labels)
    integers = labels.dtype == bool or np.issubdtype(labels.dtype, np.integer)
    if not integers and not np.issubdtype(labels.dtype, np.floating):
        raise _bad_labels(f"labels of dtype {labels.dtype}")
    if labels.ndim == 2 and labels.shape[-1] > 1:  # one-hot rows
        ones = labels == 1
        good = np.all(ones | (labels == 0), axis=-1) & (ones.sum(axis=-1) == 1)
        if not good.all():
            index = int(np.argmin(good))
            values = ", ".join(str(value) for value in labels[index, :8])
            more = ", ..." if labels.shape[-1] > 8 else ""
            raise _bad_labels(f"labels[{start + index}]=[{values}{more}]")
        return np.argmax(labels, axis=-1)
    labels = labels.reshape(-1)
    if not integers:
        whole = np.isfinite(labels) & (labels == np.floor(labels))
        if not whole.all():
            index = int(np.argmin(whole))
            raise _bad_labels(f"labels[{start + index}]={labels[index]}")
    return labels.astype("int64")


def _bad_labels(received):
    return ValueError(
        "Invalid value for argument `labels`. Expected integer class ids "
        f"(whole numbers) or one-hot rows. Received: {received}"
    )


def _is_array(value):
    return hasattr(value, "shape") and hasattr(value, "dtype")
