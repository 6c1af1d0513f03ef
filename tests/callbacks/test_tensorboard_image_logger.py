import io
import json
import math
import os
import re

import keras
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

from keras_blocks.callbacks import TensorBoardImageLogger
from tests.callbacks.markers import CHECKS

CLASSES = ("cat", "dog", "a very long class name")
TRAIN, VAL = 48, 12  # 3 batches of 16 per epoch
GREEN, RED, WHITE = (0, 160, 0), (220, 0, 0), (255, 255, 255)
# The documented grid layout: images enlarged to at least 64 pixels, a 3-pixel
# border, two 12-pixel text lines, 2 pixels between cells.
BORDER, LINES, GAP = 3, 24, 2
# The confusion matrix: 100 pixels of row labels, 28 of title and column
# labels, 4 of padding, 32-pixel cells for a few classes.
CM_LEFT, CM_TOP, CM_PAD, CM_CELL = 100, 28, 4, 32


def read_events(log_dir):
    """{tag: [(step, value)]}: images decoded, histograms as (buckets, 3)."""
    accumulator = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    accumulator.Reload()
    events = {}
    for tag in accumulator.Tags()["tensors"]:
        plugin = accumulator.SummaryMetadata(tag).plugin_data.plugin_name
        for event in accumulator.Tensors(tag):
            value = tensor_util.make_ndarray(event.tensor_proto)
            if plugin == "images":  # [width, height, png, ...]
                assert len(value) == 3  # one image
                value = np.asarray(Image.open(io.BytesIO(value[2])).convert("RGB"))
            events.setdefault(tag, []).append((event.step, value))
    return events


def steps(events, tag):
    return [step for step, _ in events[tag]]


def last(events, tag):
    return events[tag][-1][1]


def layout(count, height, width):
    """Scale, cell height and width, and columns of the grid of `count` images."""
    scale = math.ceil(64 / max(height, width))
    cell_height = height * scale + 2 * BORDER + LINES
    return scale, cell_height, width * scale + 2 * BORDER, math.ceil(math.sqrt(count))


def grid_size(count, height, width):
    _, cell_height, cell_width, columns = layout(count, height, width)
    rows = math.ceil(count / columns)
    return rows * (cell_height + GAP) + GAP, columns * (cell_width + GAP) + GAP


def cell_origin(index, count, height, width):
    """Top-left pixel of a grid cell, and the scale of its image."""
    scale, cell_height, cell_width, columns = layout(count, height, width)
    row, column = divmod(index, columns)
    return GAP + row * (cell_height + GAP), GAP + column * (cell_width + GAP), scale


def cell_images(grid, count, height, width):
    """The images shown in the grid, back at their size, (n, h, w, 3)."""
    images = []
    for index in range(count):
        top, left, scale = cell_origin(index, count, height, width)
        top, left = top + BORDER, left + BORDER
        cell = grid[top : top + height * scale, left : left + width * scale]
        images.append(cell[::scale, ::scale])
    return np.stack(images)


def border_colors(grid, count, height, width):
    return [
        tuple(grid[top + 1, left + 1])
        for top, left, _ in (cell_origin(i, count, height, width) for i in range(count))
    ]


# -- One fit with every feature on ----------------------------------------------


def cnn(input_shape, classes, data_format="channels_last"):
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(4, 3, data_format=data_format, name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.GlobalAveragePooling2D(data_format=data_format),
            keras.layers.Dense(classes, activation="softmax", name="head"),
        ],
        name="cnn",
    )


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """2 epochs, RGB images in [0, 1], a schedule; the sample is all of VAL."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((TRAIN + VAL, 16, 16, 3), dtype="float32")
    y = np.arange(TRAIN + VAL) % 3
    model = cnn((16, 16, 3), 3)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, 1, 0.5)
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy")
    log_dir = tmp_path_factory.mktemp("full")
    logger = TensorBoardImageLogger(
        log_dir,
        (x[TRAIN:], y[TRAIN:]),
        class_names=CLASSES,
        num_images=VAL,
        confusion_matrix_freq=1,
        activation_layers=("conv", "head"),
        gradient_histograms=True,
        data_format="channels_last",
    )
    model.fit(
        x[:TRAIN], y[:TRAIN], batch_size=16, epochs=2, verbose=0, callbacks=[logger]
    )
    return dict(
        events=read_events(log_dir),
        files=os.listdir(log_dir),
        model=model,
        x=x[TRAIN:],
        y=y[TRAIN:],
    )


def test_full_run_tags_and_steps(full_run):
    model, events = full_run["model"], full_run["events"]
    assert len(full_run["files"]) == 1
    expected = {
        "learning_rate",
        "images/predictions",
        "confusion_matrix",
        "activations/conv",
        "activations/head",
        *(f"weights/{v.path}" for v in model.weights),
        *(f"gradients/{v.path}" for v in model.trainable_variables),
    }
    assert "weights/cnn/bn/moving_mean" in expected  # non-trainable weights too
    assert set(events) == expected
    for tag in expected:
        assert steps(events, tag) == [0, 1], tag


def test_learning_rate_follows_the_schedule(full_run):
    # 3 optimizer steps per epoch, halving the rate at each.
    rates = [value for _, value in full_run["events"]["learning_rate"]]
    np.testing.assert_allclose(rates, [0.01 * 0.5**3, 0.01 * 0.5**6], rtol=1e-6)


def test_prediction_grid(full_run):
    events, x, y = full_run["events"], full_run["x"], full_run["y"]
    for _, grid in events["images/predictions"]:
        assert grid.shape[:2] == grid_size(VAL, 16, 16)
        # The sample is all of the validation images, in order, shown as is.
        np.testing.assert_array_equal(
            cell_images(grid, VAL, 16, 16), np.round(x * 255).astype("uint8")
        )
    # The last grid was drawn with the final weights.
    predicted = np.argmax(full_run["model"].predict(x, verbose=0), axis=-1)
    expected = [GREEN if right else RED for right in predicted == y]
    assert border_colors(last(events, "images/predictions"), VAL, 16, 16) == expected


def test_confusion_matrix(full_run):
    x, y = full_run["x"], full_run["y"]
    image = last(full_run["events"], "confusion_matrix")
    size = CM_CELL * len(CLASSES)
    assert image.shape[:2] == (CM_TOP + size + CM_PAD, CM_LEFT + size + CM_PAD)
    predicted = np.argmax(full_run["model"].predict(x, verbose=0), axis=-1)
    counts = np.zeros((3, 3), int)
    np.add.at(counts, (y, predicted), 1)  # rows true, columns predicted
    for (row, column), count in np.ndenumerate(counts):
        corner = image[CM_TOP + row * CM_CELL + 1, CM_LEFT + column * CM_CELL + 1]
        assert (tuple(corner) == WHITE) == (count == 0), (row, column)


def test_histograms(full_run):
    model, events, x, y = (full_run[k] for k in ("model", "events", "x", "y"))
    for variable in model.weights:
        histogram = last(events, f"weights/{variable.path}")
        value = keras.ops.convert_to_numpy(variable)
        assert histogram[:, 2].sum() == value.size
        np.testing.assert_allclose(
            [histogram[0, 0], histogram[-1, 1]], [value.min(), value.max()], rtol=1e-5
        )
    assert last(events, "activations/conv")[:, 2].sum() == VAL * 14 * 14 * 4
    assert last(events, "activations/head")[:, 2].sum() == VAL * 3
    # Softmax cross-entropy, averaged: d loss / d bias = mean(p - onehot).
    probabilities = model.predict(x, verbose=0)
    bias_gradient = (probabilities - np.eye(3)[y]).mean(axis=0)
    histogram = last(events, "gradients/cnn/head/bias")
    np.testing.assert_allclose(
        [histogram[0, 0], histogram[-1, 1]],
        [bias_gradient.min(), bias_gradient.max()],
        rtol=1e-4,
        atol=1e-7,
    )


# -- One fit with features off -------------------------------------------------


@pytest.fixture(scope="module")
def sparse_run(tmp_path_factory):
    """3 epochs, channels-first grayscale in [0, 255], one-hot labels; three
    loggers: grids every 2 epochs only, nothing at all, standardized images."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    x = np.round(rng.random((TRAIN + VAL, 1, 8, 12), dtype="float32") * 255)
    y = np.eye(3)[np.arange(TRAIN + VAL) % 3]
    model = keras.Sequential(
        [
            keras.Input((1, 8, 12)),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("sgd", "categorical_crossentropy")
    dirs = {name: tmp_path_factory.mktemp(name) for name in ("images", "off", "std")}
    off = dict(histogram_freq=0, learning_rate=False, data_format="channels_first")
    loggers = [
        TensorBoardImageLogger(
            dirs["images"],
            (x[TRAIN:], y[TRAIN:]),
            num_images=5,
            image_freq=2,
            confusion_matrix_freq=0,
            **off,
        ),
        TensorBoardImageLogger(
            dirs["off"],
            (x[TRAIN:], y[TRAIN:]),
            image_freq=0,
            confusion_matrix_freq=0,
            **off,
        ),
        TensorBoardImageLogger(
            dirs["std"],
            ((x[TRAIN:] - 128) / 50, y[TRAIN:]),
            num_images=4,
            image_freq=3,
            confusion_matrix_freq=2,
            **off,
        ),
    ]
    model.fit(
        x[:TRAIN], y[:TRAIN], batch_size=16, epochs=3, verbose=0, callbacks=loggers
    )
    return dict(dirs=dirs, x=x[TRAIN:])


def test_image_freq_and_disabled_features(sparse_run):
    events = read_events(sparse_run["dirs"]["images"])
    assert set(events) == {"images/predictions"}
    assert steps(events, "images/predictions") == [0, 2]


def test_all_disabled_writes_no_file(sparse_run):
    assert os.listdir(sparse_run["dirs"]["off"]) == []


def test_sample_of_channels_first_grayscale(sparse_run):
    x = sparse_run["x"]  # (VAL, 1, 8, 12) in [0, 255]
    grid = last(read_events(sparse_run["dirs"]["images"]), "images/predictions")
    assert grid.shape[:2] == grid_size(5, 8, 12)
    cells = cell_images(grid, 5, 8, 12)
    assert (cells == cells[..., :1]).all()  # gray
    # 5 distinct validation images, shown as they are, in their order.
    shown = [
        next(i for i in range(VAL) if (x[i, 0] == cell[..., 0]).all()) for cell in cells
    ]
    assert shown == sorted(set(shown))


def test_standardized_images_fill_the_range(sparse_run):
    events = read_events(sparse_run["dirs"]["std"])
    assert set(events) == {"images/predictions", "confusion_matrix"}
    # image_freq=3 over 3 epochs: the first and the last (the final model).
    assert steps(events, "images/predictions") == [0, 2]
    assert steps(events, "confusion_matrix") == [0, 2]
    cells = cell_images(last(events, "images/predictions"), 4, 8, 12)
    assert (cells.min(axis=(1, 2, 3)) == 0).all()
    assert (cells.max(axis=(1, 2, 3)) == 255).all()


# -- The last epoch, whatever the frequencies ------------------------------------


class StopAfter(keras.callbacks.Callback):
    """Stops training at the end of epoch `epoch`, as EarlyStopping would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.stop_training = True


@pytest.fixture(scope="module")
def last_epoch_runs(tmp_path_factory):
    """Default frequencies over 3 epochs; 6 epochs stopped after the second
    by a callback before or after the logger; 4 epochs from initial_epoch=1."""
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(2).random((20, 8, 8, 1), dtype="float32")
    y = np.arange(20) % 2
    model = small_model()
    model.compile("sgd", "sparse_categorical_crossentropy")
    dirs = {
        name: tmp_path_factory.mktemp(name)
        for name in ("default", "stopped_before", "stopped_after", "resumed")
    }
    sparse = dict(histogram_freq=3, learning_rate=False, data_format="channels_last")

    def logger(name):
        return TensorBoardImageLogger(dirs[name], (x[:8], y[:8]), **sparse)

    fit = dict(batch_size=10, verbose=0)
    model.fit(x, y, epochs=3, callbacks=[logger("default")], **fit)
    stop = StopAfter(1)
    model.fit(x, y, epochs=6, callbacks=[stop, logger("stopped_before")], **fit)
    model.fit(x, y, epochs=6, callbacks=[logger("stopped_after"), stop], **fit)
    model.fit(x, y, epochs=4, initial_epoch=1, callbacks=[logger("resumed")], **fit)
    return {name: read_events(path) for name, path in dirs.items()}


@pytest.mark.parametrize(
    "run, expected, images",
    [
        # confusion_matrix_freq=5 and histogram_freq=3: at the first epoch, and
        # at the last, with the final model.
        ("default", [0, 2], [0, 1, 2]),
        ("stopped_before", [0, 1], [0, 1]),  # the stop is seen at the epoch's end
        ("stopped_after", [0, 1], [0, 1]),  # the stop is seen at the training's end
        ("resumed", [3], [1, 2, 3]),  # epochs 1 to 3 of 4
    ],
)
def test_the_last_epoch_is_always_logged(last_epoch_runs, run, expected, images):
    events = last_epoch_runs[run]
    assert steps(events, "confusion_matrix") == expected
    assert steps(events, "weights/cnn/conv/kernel") == expected
    assert steps(events, "images/predictions") == images


# -- Validation data as a tf.data.Dataset ---------------------------------------


@pytest.fixture(scope="module")
def dataset_runs(tmp_path_factory):
    """The same images and one-hot labels as arrays, as a dataset of batches
    of 5 (the last one of 2), and repeated forever with 2 steps of 4; one
    logger each, every feature on, in one fit of 2 epochs."""
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(3)
    x = rng.random((TRAIN + VAL, 8, 8, 3), dtype="float32")
    y = np.eye(3, dtype="float32")[np.arange(TRAIN + VAL) % 3]
    x_val, y_val = x[TRAIN:], y[TRAIN:]
    model = cnn((8, 8, 3), 3)
    model.compile("adam", "categorical_crossentropy")
    dirs = {
        name: tmp_path_factory.mktemp(name)
        for name in ("arrays", "dataset", "first_8", "repeated")
    }
    every = dict(
        num_images=5,
        confusion_matrix_freq=1,
        activation_layers=("conv",),
        gradient_histograms=True,
        data_format="channels_last",
    )
    batches = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(5)
    loggers = [
        TensorBoardImageLogger(dirs["arrays"], (x_val, y_val), **every),
        TensorBoardImageLogger(dirs["dataset"], batches, **every),
        TensorBoardImageLogger(dirs["first_8"], (x_val[:8], y_val[:8]), **every),
        TensorBoardImageLogger(
            dirs["repeated"],
            tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(4).repeat(),
            validation_steps=2,
            **every,
        ),
    ]
    model.fit(
        x[:TRAIN],
        y[:TRAIN],
        batch_size=16,
        epochs=2,
        validation_data=batches,
        verbose=0,
        callbacks=loggers,
    )
    return {name: read_events(path) for name, path in dirs.items()}


def assert_same_events(ours, theirs):
    assert set(ours) == set(theirs)
    for tag in ours:
        assert steps(ours, tag) == steps(theirs, tag) == [0, 1], tag
        for (_, a), (_, b) in zip(ours[tag], theirs[tag], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=tag)


@pytest.mark.slow
def test_a_dataset_logs_what_its_arrays_log(dataset_runs):
    # The same sample (drawn with the same seed from the same 12 images), the
    # same confusion matrix over all of them, the same histograms.
    assert "confusion_matrix" in dataset_runs["dataset"]
    assert "gradients/cnn/head/bias" in dataset_runs["dataset"]
    assert_same_events(dataset_runs["dataset"], dataset_runs["arrays"])


@pytest.mark.slow
def test_a_repeated_dataset_is_read_for_validation_steps(dataset_runs):
    # 2 steps of 4: the first 8 images, at every epoch.
    assert_same_events(dataset_runs["repeated"], dataset_runs["first_8"])
    # It can fail: the matrix over 8 images is not the one over 12.
    matrices = [
        last(dataset_runs[n], "confusion_matrix") for n in ("first_8", "arrays")
    ]
    assert not np.array_equal(*matrices)


def dataset(n=4, batch=2):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(valid_data(n)).batch(batch)


@pytest.mark.parametrize(
    "make_data, kwargs, message",
    [
        (
            lambda: dataset().repeat(),
            {},
            "Invalid value for argument `validation_steps`. A dataset that repeats forever needs a number of batches to read. Received: validation_steps=None",
        ),
        (
            lambda: dataset().unbatch(),
            {},
            "Invalid value for argument `validation_data`. Expected a dataset of `(x, y)` batches: 4D images `x` of shape (batch, height, width, channels). Received: x of shape (8, 8, 1)",
        ),
        (
            lambda: dataset().map(lambda x, y: x),
            {},
            "Invalid value for argument `validation_data`. Expected a dataset of `(x, y)` batches. Received: a dataset of TensorSpec",
        ),
        (
            lambda: dataset().map(lambda x, y: (x, y - 1)),
            {},
            "Invalid value for argument `validation_data`. Expected non-negative integer labels `y`. Received: y with values from -1 to 0",
        ),
        (
            lambda: dataset().take(0),
            {},
            "Invalid value for argument `validation_data`. The dataset holds no images.",
        ),
        (
            dataset,
            dict(validation_steps=0),
            "Invalid value for argument `validation_steps`. Expected a strictly positive integer. Received: validation_steps=0",
        ),
        (
            lambda: valid_data(),
            dict(validation_steps=2),
            "Invalid value for argument `validation_steps`. It bounds a dataset, and `validation_data` is arrays. Received: validation_steps=2",
        ),
    ],
)
@CHECKS
def test_bad_datasets(make_data, kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=re.escape(message)):
        TensorBoardImageLogger(tmp_path, make_data(), **kwargs)


@CHECKS
def test_a_dataset_has_no_config(tmp_path):
    logger = TensorBoardImageLogger(tmp_path, dataset())
    with pytest.raises(NotImplementedError, match=re.escape("a tf.data.Dataset")):
        logger.get_config()


# -- Errors --------------------------------------------------------------------


def valid_data(n=4):
    return np.zeros((n, 8, 8, 1), "float32"), np.arange(n) % 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(log_dir=""),
            "Invalid value for argument `log_dir`. Expected a directory path. Received: log_dir=''",
        ),
        (dict(log_dir=3), "Received: log_dir=3"),
        (
            dict(validation_data=np.zeros((4, 8, 8, 1))),
            "Invalid value for argument `validation_data`. Expected a tuple `(x, y)` of images and labels, or a `tf.data.Dataset` of `(x, y)` batches. Received: validation_data of type ndarray",
        ),
        (
            dict(validation_data=(np.zeros((4, 8, 8)), np.zeros(4))),
            "Invalid value for argument `validation_data`. Expected numeric images `x` of shape (batch, height, width, channels), with no empty dimension. Received: x.shape=(4, 8, 8), x.dtype=float64",
        ),
        (
            dict(validation_data=(np.zeros((0, 8, 8, 1)), np.zeros(0))),
            "Received: x.shape=(0, 8, 8, 1)",
        ),
        (
            dict(validation_data=(np.zeros((4, 8, 8, 1)), np.zeros(3))),
            "Invalid value for argument `validation_data`. Expected labels `y` of shape (n,), (n, 1) or (n, classes) for the n=4 images. Received: y.shape=(3,), y.dtype=float64",
        ),
        (
            dict(validation_data=(np.zeros((4, 8, 8, 1)), np.array([0, 1, -1, 2]))),
            "Invalid value for argument `validation_data`. Expected non-negative integer labels `y`. Received: y with values from -1 to 2",
        ),
        (
            dict(validation_data=(np.zeros((4, 8, 8, 1)), np.array([0, 0.5, 1, 1]))),
            "Expected non-negative integer labels `y`.",
        ),
        (
            dict(class_names="cat"),
            "Invalid value for argument `class_names`. Expected None or a non-empty sequence of strings. Received: class_names='cat'",
        ),
        (dict(class_names=()), "Received: class_names=()"),
        (dict(class_names=("a", 1)), "Received: class_names=('a', 1)"),
        (
            dict(class_names=("a",)),
            "Invalid value for argument `class_names`. Expected one name per class, for labels up to 1. Received: class_names=('a',)",
        ),
        (
            dict(
                validation_data=(np.zeros((2, 8, 8, 1)), np.eye(3)[[0, 1]]),
                class_names=("a", "b"),
            ),
            "Expected one name per class, for 3 one-hot classes. Received: class_names=('a', 'b')",
        ),
        (
            dict(num_images=0),
            "Invalid value for argument `num_images`. Expected a strictly positive integer. Received: num_images=0",
        ),
        (
            dict(image_freq=-1),
            "Invalid value for argument `image_freq`. Expected a non-negative integer. Received: image_freq=-1",
        ),
        (dict(histogram_freq=1.5), "Received: histogram_freq=1.5"),
        (
            dict(confusion_matrix_freq=True),
            "Invalid value for argument `confusion_matrix_freq`. Expected a non-negative integer. Received: confusion_matrix_freq=True",
        ),
        (
            dict(gradient_histograms=1),
            "Invalid value for argument `gradient_histograms`. Expected a boolean. Received: gradient_histograms=1",
        ),
        (
            dict(activation_layers="conv"),
            "Invalid value for argument `activation_layers`. Expected a sequence of layer names. Received: activation_layers='conv'",
        ),
        (
            dict(activation_layers=("conv",), histogram_freq=0),
            "Invalid value for argument `activation_layers`. It is written every `histogram_freq` epochs, so it needs `histogram_freq` > 0. Received: activation_layers=('conv',) with histogram_freq=0",
        ),
        (
            dict(gradient_histograms=True, histogram_freq=0),
            "Received: gradient_histograms=True with histogram_freq=0",
        ),
        (dict(gradient_histograms="yes"), "Received: gradient_histograms='yes'"),
        (dict(learning_rate=None), "Received: learning_rate=None"),
        (
            dict(data_format="channels_middle"),
            "Invalid value for argument `data_format`. Expected one of ('channels_last', 'channels_first'). Received: data_format='channels_middle'",
        ),
        (
            dict(seed=-1),
            "Invalid value for argument `seed`. Expected a non-negative integer. Received: seed=-1",
        ),
        (
            dict(batch_size=0),
            "Invalid value for argument `batch_size`. Expected a strictly positive integer. Received: batch_size=0",
        ),
    ],
)
@CHECKS
def test_bad_args(kwargs, message, tmp_path):
    kwargs = {"log_dir": tmp_path, "validation_data": valid_data(), **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        TensorBoardImageLogger(**kwargs)


@CHECKS
def test_misspelled_argument_fails(tmp_path):
    with pytest.raises(TypeError, match="histogramfreq"):
        TensorBoardImageLogger(tmp_path, valid_data(), histogramfreq=1)


def start(logger, model):
    """The checks `fit` runs at the start of training."""
    logger.set_model(model)
    logger.on_train_begin()


def small_model(classes=2):
    return cnn((8, 8, 1), classes)


@CHECKS
def test_unknown_activation_layer(tmp_path):
    logger = TensorBoardImageLogger(
        tmp_path, valid_data(), activation_layers=("conv", "nope")
    )
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Invalid value for argument `activation_layers`. Expected names of top-level layers of the model 'cnn': ('conv', 'bn', 'global_average_pooling2d"
        ),
    ) as error:
        start(logger, small_model())
    assert "Received: activation_layers=('conv', 'nope') (unknown: ('nope',))" in str(
        error.value
    )
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "make_model, message",
    [
        (
            lambda: small_model(classes=3),
            "Invalid value for argument `class_names`. Expected one name per class of the model (3). Received: class_names=('a', 'b') (2 names)",
        ),
        (
            lambda: keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Dense(1)]),
            "TensorBoardImageLogger needs a classifier with a single output of shape (batch, classes), with classes >= 2. Received: output shape (None, 8, 8, 1)",
        ),
    ],
)
@CHECKS
def test_model_does_not_match(make_model, message, tmp_path):
    logger = TensorBoardImageLogger(tmp_path, valid_data(), class_names=("a", "b"))
    with pytest.raises(ValueError, match=re.escape(message)):
        start(logger, make_model())


@CHECKS
def test_labels_beyond_the_model_classes(tmp_path):
    x, _ = valid_data()
    logger = TensorBoardImageLogger(tmp_path, (x, np.array([0, 1, 2, 0])))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "The model predicts 2 classes, but `validation_data` has labels up to 2. Labels must be in [0, 2)."
        ),
    ):
        start(logger, small_model(classes=2))


@CHECKS
def test_config_round_trip(tmp_path):
    logger = TensorBoardImageLogger(
        tmp_path,
        valid_data(),
        class_names=["a", "b"],
        activation_layers=["conv"],
        seed=None,
    )
    config = logger.get_config()
    assert config["class_names"] == ("a", "b")
    assert config["activation_layers"] == ("conv",)
    assert config["data_format"] == keras.config.image_data_format()
    clone = keras.saving.get_registered_object(
        "keras_blocks>TensorBoardImageLogger"
    ).from_config(config)
    assert clone.get_config() == config


@CHECKS
def test_config_is_json_with_the_validation_data(tmp_path):
    """The config holds the data itself: through JSON, and through Keras'
    serialization in safe mode, the clone has the same data, dtypes and
    arguments (so the same fixed sample)."""
    x = np.random.default_rng(1).random((5, 8, 8, 1), dtype="float32")
    y = np.eye(2, dtype="float32")[np.arange(5) % 2]  # one-hot
    logger = TensorBoardImageLogger(
        tmp_path, (x, y), class_names=["a", "b"], num_images=3, seed=7
    )
    config = logger.get_config()
    clone = TensorBoardImageLogger.from_config(json.loads(json.dumps(config)))
    serialized = json.dumps(keras.saving.serialize_keras_object(logger))
    restored = keras.saving.deserialize_keras_object(
        json.loads(serialized), safe_mode=True
    )
    for other in (clone, restored):
        assert type(other) is TensorBoardImageLogger
        assert other.get_config() == config
        for theirs, ours in zip(other.validation_data, (x, y), strict=True):
            assert theirs.dtype == ours.dtype
            np.testing.assert_array_equal(theirs, ours)
