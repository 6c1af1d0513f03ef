"""The `validation_data` of `TensorBoardImageLogger`: checked, read, sampled.

Arrays `(x, y)` are checked once and kept as NumPy arrays; a `tf.data.Dataset`
of `(x, y)` (or `(x, y, sample_weight)`) batches is checked from its element
spec, then read batch by batch, `validation_steps` batches at most, each time
it is needed.
"""

import sys

import numpy as np


def checked(value, steps, data_format):
    """Checks `validation_data`; returns a dataset as it is, arrays as NumPy.

    `steps`: the `validation_steps` argument (None or a checked int), which
    only a dataset may have.
    """
    if is_dataset(value):
        return _checked_dataset(value, steps, data_format)
    if steps is not None:
        raise ValueError(
            "Invalid value for argument `validation_steps`. It bounds a "
            "dataset, and `validation_data` is arrays. Received: "
            f"validation_steps={steps!r}"
        )
    return _checked_arrays(value, data_format)


def batches(dataset, steps):
    """The dataset's `(x, y)` NumPy batches, `steps` at most (None: all)."""
    if steps is not None:
        dataset = dataset.take(steps)
    for batch in dataset.as_numpy_iterator():
        yield batch[0], batch[1]  # without sample weights


def labels(data, steps, data_format):
    """All integer labels, `(n,)`, and the width of one-hot labels (None for
    integer labels); a dataset's batches are checked as arrays are."""
    if isinstance(data, tuple):
        _, y = data
        return integer_labels(y), (
            y.shape[1] if y.ndim == 2 and y.shape[1] > 1 else None
        )
    return _dataset_labels(batches(data, steps), data_format)


def sample(data, steps, count, num_images, seed):
    """A fixed sample of `num_images` of the `count` images (all if fewer),
    drawn with `seed`: its sorted indices, images and labels."""
    # Sorted, so that the grid follows the order of validation_data.
    indices = np.sort(
        np.random.default_rng(seed).choice(count, min(num_images, count), replace=False)
    )
    if isinstance(data, tuple):
        x, y = data
        return indices, x[indices], y[indices]
    return (indices, *_take(batches(data, steps), indices))


def is_dataset(value):
    """Whether `value` is a `tf.data.Dataset` (TensorFlow imported: it made it)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(value, tf.data.Dataset)


def _layout(data_format):
    if data_format == "channels_last":
        return "(batch, height, width, channels)"
    return "(batch, channels, height, width)"


def _checked_arrays(value, data_format):
    """Checks `(x, y)` and returns them as NumPy arrays."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        size = f" and length {len(value)}" if isinstance(value, tuple | list) else ""
        raise ValueError(
            "Invalid value for argument `validation_data`. Expected a tuple "
            "`(x, y)` of images and labels, or a `tf.data.Dataset` of `(x, y)` "
            f"batches. Received: validation_data of type {type(value).__name__}"
            f"{size}"
        )
    x, y = (np.asarray(item) for item in value)
    _check_images(x, data_format)
    _check_labels(y, len(x))
    return x, y


def _checked_dataset(dataset, steps, data_format):
    """Checks what a dataset's elements are, and that reading it ends."""
    import tensorflow as tf

    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        kind = type(spec).__name__
        if isinstance(spec, tuple):
            kind += f" of length {len(spec)}"
        raise ValueError(
            "Invalid value for argument `validation_data`. Expected a dataset of "
            f"`(x, y)` batches. Received: a dataset of {kind}"
        )
    shape = spec[0].shape
    if shape.rank != 4:
        raise ValueError(
            "Invalid value for argument `validation_data`. Expected a dataset of "
            f"`(x, y)` batches: 4D images `x` of shape {_layout(data_format)}. "
            f"Received: x of shape {tuple(shape) if shape.rank is not None else shape}"
        )
    if steps is None and dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            "Invalid value for argument `validation_steps`. A dataset that "
            "repeats forever needs a number of batches to read. Received: "
            "validation_steps=None"
        )
    return dataset


def _dataset_labels(batches, data_format):
    """All integer labels of a dataset's batches, checked as arrays' are, and
    the width of one-hot labels (None for integer labels)."""
    labels, width, count = [], None, 0
    for x, y in batches:
        count += 1
        _check_images(x, data_format)
        _check_labels(y, len(x))
        if y.ndim == 2 and y.shape[1] > 1:
            width = y.shape[1]
        labels.append(integer_labels(y))
    if not labels or not sum(len(batch) for batch in labels):
        raise ValueError(
            "Invalid value for argument `validation_data`. The dataset holds no "
            f"images. Received: a dataset of {count} batches"
        )
    return np.concatenate(labels), width


def _take(batches, indices):
    """The images and labels at sorted `indices` of a dataset's batches."""
    images, labels, start = [], [], 0
    for x, y in batches:
        chosen = indices[(indices >= start) & (indices < start + len(x))] - start
        images.append(x[chosen])
        labels.append(y[chosen])
        start += len(x)
    if sum(len(chosen) for chosen in images) != len(indices):  # a shorter reading
        raise ValueError(
            "Invalid value for argument `validation_data`. The dataset gave "
            f"{start} images at its second reading, fewer than the sample "
            "needs. Received: a dataset that changes from one reading to the next"
        )
    return np.concatenate(images), np.concatenate(labels)


def _check_images(x, data_format):
    if x.ndim != 4 or x.dtype.kind not in "biuf" or 0 in x.shape:
        raise ValueError(
            "Invalid value for argument `validation_data`. Expected numeric "
            f"images `x` of shape {_layout(data_format)}, with no empty "
            "dimension. Received: "
            f"x.shape={x.shape}, x.dtype={x.dtype}"
        )


def _check_labels(y, count):
    if (
        y.ndim not in (1, 2)
        or len(y) != count
        or y.dtype.kind not in "biuf"
        or (y.ndim == 2 and y.shape[1] == 0)
    ):
        raise ValueError(
            "Invalid value for argument `validation_data`. Expected labels `y` "
            f"of shape (n,), (n, 1) or (n, classes) for the n={count} images. "
            f"Received: y.shape={y.shape}, y.dtype={y.dtype}"
        )
    if (y.ndim == 1 or y.shape[1] == 1) and ((y < 0).any() or (y % 1).any()):
        raise ValueError(
            "Invalid value for argument `validation_data`. Expected "
            "non-negative integer labels `y`. Received: y with values from "
            f"{y.min()} to {y.max()}"
        )


def check_class_names(class_names, labels, width):
    """`labels`: all integer labels; `width`: that of one-hot labels, or None."""
    if class_names is None:
        return
    if width is not None and width != len(class_names):
        found = f"{width} one-hot classes"
    elif width is None and labels.max() >= len(class_names):
        found = f"labels up to {labels.max()}"
    else:
        return
    raise ValueError(
        "Invalid value for argument `class_names`. Expected one name per "
        f"class, for {found}. Received: class_names={class_names}"
    )


def check_label_range(labels, classes):
    if labels.max() >= classes:
        raise ValueError(
            f"The model predicts {classes} classes, but `validation_data` has "
            f"labels up to {labels.max()}. Labels must be in [0, {classes})."
        )


def integer_labels(y):
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=-1)  # one-hot
    return y.reshape(-1).astype("int64")
