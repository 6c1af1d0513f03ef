"""TensorBoardImageLogger: what a classifier sees and predicts, in TensorBoard."""

import contextlib
import math
import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_blocks import _validation as check

_GRADIENT_BACKENDS = ("tensorflow", "jax", "torch")

# Prediction grid layout, in pixels.
_MIN_SIZE = 64  # images are enlarged (nearest neighbour) to at least this size
_BORDER = 3  # green when the prediction is right, red when it is wrong
_LINE = 12  # one line of the default font (10 px)
_GAP = 2  # white space between cells
_RIGHT = (0, 160, 0)
_WRONG = (220, 0, 0)

# Confusion matrix layout, in pixels.
_CM_MAX_CELL = 32
_CM_SIZE = 640  # the matrix shrinks its cells to about this size
_CM_LEFT = 100  # row labels
_CM_TOP = 2 * _LINE + 4  # title and column labels
_CM_PAD = 4
_CM_DARK = np.array((8, 48, 107))  # the shade of a cell holding a whole row


@keras.saving.register_keras_serializable(package="keras_blocks")
class TensorBoardImageLogger(keras.callbacks.Callback):
    """Logs predictions, a confusion matrix and histograms to TensorBoard.

    At the end of selected epochs, writes to `log_dir` (readable with
    `tensorboard --logdir`):

    - `images/predictions` (every `image_freq` epochs): one grid image of a
      fixed sample of `num_images` validation images, chosen once (seeded) and
      kept in their order in `validation_data`; each cell has a green border
      when the model's prediction is right and a red one when it is wrong,
      with the true and predicted labels below.
    - `confusion_matrix` (every `confusion_matrix_freq` epochs): a heat map
      of the predictions on all of `validation_data`, rows the true classes
      and columns the predicted ones; each cell shows its count and is shaded
      by its fraction of the row.
    - `weights/<variable.path>` (every `histogram_freq` epochs): a histogram
      of every weight of the model, trainable or not (such as batch
      normalization's moving statistics).
    - `activations/<layer name>` (every `histogram_freq` epochs, opt-in): the
      outputs of the named top-level layers on the fixed sample.
    - `gradients/<variable.path>` (every `histogram_freq` epochs, opt-in): the
      gradients of the compiled loss on the fixed sample, with the model in
      inference mode (so that computing them changes no state).
    - `learning_rate` (every epoch, when `learning_rate`): the optimizer's
      current learning rate, whether a number or a schedule.

    The step of every summary is the epoch index as Keras passes it to
    callbacks (0-based). A feature is written at epochs where
    `epoch % freq == 0`, as Keras' `TensorBoard` callback does, so the first
    epoch is always logged. A disabled feature writes nothing, and the event
    file is created only when there is something to write.

    For the images, the model must be a classifier with a single output of
    shape `(batch, classes)` (probabilities or logits). Summaries are written with
    `tf.summary` (TensorFlow and TensorBoard) on every Keras backend; on the
    JAX and PyTorch backends, TensorFlow is kept off the GPUs when this
    callback is the first to use it, so that it leaves their memory alone.

    Args:
        log_dir: str or path. Directory the event file is written to.
        validation_data: tuple `(x, y)` of NumPy arrays: 4D images `x` in
            the model's `data_format`, and integer labels `y` of shape
            `(n,)` or `(n, 1)` or one-hot labels of shape `(n, classes)`.
            Images in [0, 1] or [0, 255] are shown as they are; others (such
            as standardized inputs) are rescaled to each image's range.
            Images with 3 or 4 channels are shown as RGB (dropping alpha),
            others as the grayscale of their first channel. The labels are
            passed as they are to the compiled loss for `gradient_histograms`.
            Not JSON-serializable, so a config holding it is only for
            in-memory cloning.
        class_names: sequence of str or None. Names of the classes, in label
            order; `None` shows the labels' indices.
        num_images: int. Size of the fixed sample (all of `validation_data`
            when it holds fewer images).
        image_freq: int. Epochs between prediction grids; 0 writes none.
        confusion_matrix_freq: int. Epochs between confusion matrices; 0
            writes none. Each is an inference pass over all of
            `validation_data`, about `len(x) / (3 * training images)` of an
            epoch (7% with a validation set a quarter of the training set's
            size), hence the default of 5; the other defaults cost under 1%.
        histogram_freq: int. Epochs between histograms; 0 writes none.
        activation_layers: sequence of str. Names of top-level layers whose
            outputs are logged; needs a functional or `Sequential` model.
        gradient_histograms: bool. Whether to log the loss gradients (on the
            TensorFlow, JAX or PyTorch backend).
        learning_rate: bool. Whether to log the learning rate.
        data_format: str or None. `"channels_last"` or `"channels_first"`,
            the layout of `x`; `None` uses `keras.config.image_data_format()`.
        seed: int or None. Seed for choosing the fixed sample; `None` picks a
            different sample in each process.
        batch_size: int. Batch size of the predictions.

    Raises:
        ValueError: on an invalid argument; at the start of training, when
            `activation_layers` names a layer the model does not have (the
            message lists those it has) or the model is not a classifier that
            matches the labels and `class_names`.
        ImportError: at the start of training, when TensorFlow or TensorBoard
            is missing.

    Examples:
        >>> import os, tempfile
        >>> import keras
        >>> import numpy as np
        >>> from keras_blocks.callbacks import TensorBoardImageLogger
        >>> x = np.random.default_rng(0).random((24, 8, 8, 1), dtype="float32")
        >>> y = np.arange(24) % 3
        >>> model = keras.Sequential([
        ...     keras.Input((8, 8, 1)),
        ...     keras.layers.Conv2D(4, 3, name="conv", data_format="channels_last"),
        ...     keras.layers.GlobalAveragePooling2D(data_format="channels_last"),
        ...     keras.layers.Dense(3, activation="softmax"),
        ... ])
        >>> model.compile("adam", "sparse_categorical_crossentropy")
        >>> log_dir = tempfile.TemporaryDirectory()
        >>> logger = TensorBoardImageLogger(
        ...     log_dir.name,
        ...     (x, y),
        ...     class_names=("circle", "square", "star"),
        ...     num_images=9,
        ...     activation_layers=("conv",),
        ...     data_format="channels_last",
        ... )
        >>> history = model.fit(x, y, epochs=1, verbose=0, callbacks=[logger])
        >>> len(os.listdir(log_dir.name))  # one event file
        1
        >>> log_dir.cleanup()
    """

    def __init__(
        self,
        log_dir: str | os.PathLike,
        validation_data: tuple[Any, Any],
        class_names: Sequence[str] | None = None,
        num_images: int = 16,
        image_freq: int = 1,
        confusion_matrix_freq: int = 5,
        histogram_freq: int = 1,
        activation_layers: Sequence[str] = (),
        gradient_histograms: bool = False,
        learning_rate: bool = True,
        data_format: str | None = None,
        seed: int | None = 0,
        batch_size: int = 32,
    ):
        super().__init__()
        if not isinstance(log_dir, str | os.PathLike) or not os.fspath(log_dir):
            raise ValueError(
                "Invalid value for argument `log_dir`. Expected a directory path. "
                f"Received: log_dir={log_dir!r}"
            )
        self.log_dir = os.fspath(log_dir)
        self.data_format = check.data_format(data_format)
        self.class_names = _names(
            "class_names", class_names, "None or a non-empty sequence of strings"
        )
        self.validation_data = _validation_data(
            validation_data, self.data_format, self.class_names
        )
        self.num_images = check.positive_int("num_images", num_images)
        self.image_freq = check.non_negative_int("image_freq", image_freq)
        self.confusion_matrix_freq = check.non_negative_int(
            "confusion_matrix_freq", confusion_matrix_freq
        )
        self.histogram_freq = check.non_negative_int("histogram_freq", histogram_freq)
        self.activation_layers = _names(
            "activation_layers",
            activation_layers,
            "a sequence of layer names",
            allow_empty=True,
        )
        self.gradient_histograms = check.boolean(
            "gradient_histograms", gradient_histograms
        )
        self.learning_rate = check.boolean("learning_rate", learning_rate)
        self.seed = check.optional(check.non_negative_int, "seed", seed)
        self.batch_size = check.positive_int("batch_size", batch_size)

        # Opt-in histograms that histogram_freq=0 would silently never write.
        for name, value in (
            ("activation_layers", self.activation_layers),
            ("gradient_histograms", self.gradient_histograms),
        ):
            if value and not self.histogram_freq:
                raise ValueError(
                    f"Invalid value for argument `{name}`. It is written every "
                    "`histogram_freq` epochs, so it needs `histogram_freq` > 0. "
                    f"Received: {name}={value!r} with histogram_freq=0"
                )
        if self.gradient_histograms and keras.backend.backend() not in (
            _GRADIENT_BACKENDS
        ):
            raise ValueError(
                "Invalid value for argument `gradient_histograms`. Loss "
                f"gradients need one of the backends {_GRADIENT_BACKENDS}. "
                f"Received: gradient_histograms=True with the "
                f"{keras.backend.backend()!r} backend"
            )

        x, y = self.validation_data
        self._labels = _integer_labels(y)  # (n,)
        count = min(self.num_images, len(x))
        # Sorted, so that the grid follows the order of validation_data.
        self._sample = np.sort(
            np.random.default_rng(self.seed).choice(len(x), count, replace=False)
        )
        self._display = _display_images(x[self._sample], self.data_format)
        self._writer = None
        self._table_writers = {}
        self._summary = None
        self._activation_model = None
        self._gradients = None

    # -- Training hooks --------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._close_writer()
        self._activation_model = self._gradients = None
        if not (
            self.image_freq
            or self.confusion_matrix_freq
            or self.histogram_freq
            or self.learning_rate
        ):
            return
        self._summary = _import_summary()
        model = self.model
        outputs = getattr(model, "outputs", None)  # None for a subclassed model
        if (self.image_freq or self.confusion_matrix_freq) and outputs:
            if len(outputs) != 1:
                raise ValueError(self._not_a_classifier(f"{len(outputs)} outputs"))
            self._check_classes(tuple(outputs[0].shape))
        if self.histogram_freq and self.activation_layers:
            self._activation_model = self._build_activation_model(model)
        if self.histogram_freq and self.gradient_histograms:
            self._gradients = _loss_gradient_function(model)

    def on_epoch_end(self, epoch, logs=None):
        grid = _due(self.image_freq, epoch)
        matrix = _due(self.confusion_matrix_freq, epoch)
        histograms = _due(self.histogram_freq, epoch)
        if not (grid or matrix or histograms or self.learning_rate):
            return
        model = self.model  # on JAX, reading it syncs the trained state back
        if self._writer is None:
            self._writer = self._summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            if self.learning_rate:
                rate = keras.ops.convert_to_numpy(model.optimizer.learning_rate)
                self._summary.scalar("learning_rate", float(rate), step=epoch)
            if grid or matrix:
                self._write_images(model, epoch, grid, matrix)
            if histograms:
                self._write_histograms(model, epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        self._close_writer()
        self._activation_model = self._gradients = None

    def _close_writer(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._table_writers = {}  # traced with the writer: made again with it

    # -- Summaries -------------------------------------------------------------

    def _write_images(self, model, epoch, grid, matrix):
        x, _ = self.validation_data
        if matrix:
            predicted = self._predict(model, x)
            classes = self._classes
            counts = np.bincount(
                self._labels * classes + predicted, minlength=classes * classes
            ).reshape(classes, classes)  # (true, predicted)
            image = _confusion_image(counts, self.class_names)
            self._summary.image("confusion_matrix", image[None], step=epoch)
            predicted = predicted[self._sample]
        elif grid:
            predicted = self._predict(model, x[self._sample])
        if grid:
            image = _prediction_grid(
                self._display, self._labels[self._sample], predicted, self.class_names
            )
            self._summary.image("images/predictions", image[None], step=epoch)

    def _write_histograms(self, model, epoch):
        tables = {}  # tag: (buckets, 3) table, written together below
        for variable in model.weights:
            if "float" in str(variable.dtype):  # not counters
                tables[f"weights/{variable.path}"] = _histogram_table(variable)
        x, y = self.validation_data
        sample = x[self._sample]
        if self._activation_model is not None:
            outputs = _predict(self._activation_model, sample, self.batch_size)
            if len(self.activation_layers) == 1:
                outputs = [outputs]
            for name, output in zip(self.activation_layers, outputs, strict=True):
                tables[f"activations/{name}"] = _histogram_table(output)
        if self._gradients is not None:
            gradients = self._gradients(sample, y[self._sample])
            for variable, gradient in zip(
                model.trainable_variables, gradients, strict=True
            ):
                if gradient is not None:  # None: the loss does not use it
                    tables[f"gradients/{variable.path}"] = _histogram_table(gradient)
        self._write_tables(tables, epoch)

    def _write_tables(self, tables, step):
        """Writes histogram tables as `tf.summary.histogram` does, all in one
        call of a TensorFlow function traced once per writer and set of tags:
        written one by one, eagerly, each costs about 1 ms of Python and op
        dispatch, a tenth of a second an epoch for a ResNet-20's weights."""
        import tensorflow as tf

        tags = tuple(tables)
        write = self._table_writers.get(tags)
        if write is None:
            from tensorboard.plugins.histogram import metadata

            summary_metadata = metadata.create_summary_metadata(
                display_name=None, description=None
            )

            @tf.function
            def write(tables, step):
                for tag, table in zip(tags, tables, strict=True):
                    self._summary.write(
                        tag, table, step=step, metadata=summary_metadata
                    )

            self._table_writers[tags] = write
        write(
            [tf.constant(table) for table in tables.values()],
            tf.constant(step, tf.int64),
        )

    def _predict(self, model, x):
        """The predicted classes of `x`, shape (n,)."""
        scores = _predict(model, x, self.batch_size)
        if not isinstance(scores, np.ndarray):
            raise ValueError(self._not_a_classifier(f"a {type(scores).__name__}"))
        self._check_classes(scores.shape)
        return np.argmax(scores, axis=-1)

    # -- Checks that need the model --------------------------------------------

    def _check_classes(self, shape):
        """Checks a `(batch, classes)` output against the labels and names."""
        if len(shape) != 2 or shape[-1] is None or shape[-1] < 2:
            raise ValueError(self._not_a_classifier(f"output shape {shape}"))
        self._classes = classes = int(shape[-1])
        _, y = self.validation_data
        if y.ndim == 2 and y.shape[1] > 1 and y.shape[1] != classes:
            raise ValueError(
                f"The model predicts {classes} classes, but the one-hot labels "
                f"of `validation_data` have {y.shape[1]}. Received: "
                f"y.shape={y.shape}"
            )
        if self._labels.max() >= classes:
            raise ValueError(
                f"The model predicts {classes} classes, but `validation_data` "
                f"has labels up to {self._labels.max()}. Labels must be in "
                f"[0, {classes})."
            )
        if self.class_names is not None and len(self.class_names) != classes:
            raise ValueError(
                f"Invalid value for argument `class_names`. Expected one name "
                f"per class of the model ({classes}). Received: "
                f"class_names={self.class_names} ({len(self.class_names)} names)"
            )

    def _not_a_classifier(self, received):
        return (
            "TensorBoardImageLogger needs a classifier with a single output of "
            f"shape (batch, classes), with classes >= 2. Received: {received}"
        )

    def _build_activation_model(self, model):
        available = tuple(layer.name for layer in model.layers)
        unknown = tuple(n for n in self.activation_layers if n not in available)
        if unknown:
            raise ValueError(
                "Invalid value for argument `activation_layers`. Expected names "
                f"of top-level layers of the model '{model.name}': {available}. "
                f"Received: activation_layers={self.activation_layers} (unknown: "
                f"{unknown})"
            )
        try:
            outputs = [model.get_layer(n).output for n in self.activation_layers]
            inputs = model.inputs  # a list, where `model.input` fails on Sequential
            return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs)
        except (AttributeError, ValueError) as error:
            raise ValueError(
                "Invalid value for argument `activation_layers`. Activation "
                "histograms need a functional or Sequential model whose named "
                "layers are each called once. Received: activation_layers="
                f"{self.activation_layers} for model '{model.name}' "
                f"({model.__class__.__name__}): {error}"
            ) from error

    # -- Serialization ---------------------------------------------------------

    def get_config(self):
        return {
            "log_dir": self.log_dir,
            "validation_data": self.validation_data,
            "class_names": self.class_names,
            "num_images": self.num_images,
            "image_freq": self.image_freq,
            "confusion_matrix_freq": self.confusion_matrix_freq,
            "histogram_freq": self.histogram_freq,
            "activation_layers": self.activation_layers,
            "gradient_histograms": self.gradient_histograms,
            "learning_rate": self.learning_rate,
            "data_format": self.data_format,
            "seed": self.seed,
            "batch_size": self.batch_size,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# -- Argument checks -----------------------------------------------------------


def _names(name, value, expected, allow_empty=False):
    """A tuple of strings (None stays None); a lone string is rejected."""
    if value is None and not allow_empty:
        return None
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or not all(isinstance(item, str) for item in value)
        or (not value and not allow_empty)
    ):
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected {expected}. "
            f"Received: {name}={value!r}"
        )
    return tuple(value)


def _validation_data(value, data_format, class_names):
    """Checks `(x, y)` and returns them as NumPy arrays."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        size = f" and length {len(value)}" if isinstance(value, tuple | list) else ""
        raise ValueError(
            "Invalid value for argument `validation_data`. Expected a tuple "
            "`(x, y)` of images and labels. Received: validation_data of type "
            f"{type(value).__name__}{size}"
        )
    x, y = (np.asarray(item) for item in value)
    layout = (
        "(batch, height, width, channels)"
        if data_format == "channels_last"
        else "(batch, channels, height, width)"
    )
    if x.ndim != 4 or x.dtype.kind not in "biuf" or 0 in x.shape:
        raise ValueError(
            "Invalid value for argument `validation_data`. Expected numeric "
            f"images `x` of shape {layout}, with no empty dimension. Received: "
            f"x.shape={x.shape}, x.dtype={x.dtype}"
        )
    if (
        y.ndim not in (1, 2)
        or len(y) != len(x)
        or y.dtype.kind not in "biuf"
        or (y.ndim == 2 and y.shape[1] == 0)
    ):
        raise ValueError(
            "Invalid value for argument `validation_data`. Expected labels `y` "
            f"of shape (n,), (n, 1) or (n, classes) for the n={len(x)} images. "
            f"Received: y.shape={y.shape}, y.dtype={y.dtype}"
        )
    if (y.ndim == 1 or y.shape[1] == 1) and ((y < 0).any() or (y % 1).any()):
        raise ValueError(
            "Invalid value for argument `validation_data`. Expected "
            "non-negative integer labels `y`. Received: y with values from "
            f"{y.min()} to {y.max()}"
        )
    if class_names is not None:
        one_hot = y.ndim == 2 and y.shape[1] > 1
        highest = int(_integer_labels(y).max())
        if one_hot and y.shape[1] != len(class_names):
            labels = f"{y.shape[1]} one-hot classes"
        elif not one_hot and highest >= len(class_names):
            labels = f"labels up to {highest}"
        else:
            labels = None
        if labels:
            raise ValueError(
                "Invalid value for argument `class_names`. Expected one name per "
                f"class, for {labels}. Received: class_names={class_names}"
            )
    return x, y


def _integer_labels(y):
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=-1)  # one-hot
    return y.reshape(-1).astype("int64")


def _histogram_table(values, buckets=30):
    """The `(buckets, 3)` table of `tf.summary.histogram` (left edge, right
    edge, count), with NumPy counting the buckets.

    `tf.summary.histogram` runs about 15 ms of eager TensorFlow ops a call,
    seconds an epoch over a ResNet's variables; this takes about 0.5 ms, half
    of it copying the values out of the backend.
    """
    values = keras.ops.convert_to_numpy(values).astype("float64").ravel()
    values = values[np.isfinite(values)]  # np.histogram rejects inf and nan
    if not values.size:
        return np.zeros((buckets, 3))
    if values.min() == values.max():  # as TensorBoard: all in the last one
        table = np.full((buckets, 3), values[0])
        table[:, 2] = 0
        table[-1, 2] = values.size
        return table
    counts, edges = np.histogram(values, bins=buckets)
    return np.stack([edges[:-1], edges[1:], counts], axis=1)


def _due(freq, epoch):
    return freq > 0 and epoch % freq == 0


def _predict(model, x, batch_size):
    """`model.predict(x)` without its set-up for each call, which costs a tenth
    of a second on TensorFlow: most of this callback's time at small samples."""
    batches = [
        model.predict_on_batch(x[start : start + batch_size])
        for start in range(0, len(x), batch_size)
    ]
    return keras.tree.map_structure(lambda *parts: np.concatenate(parts), *batches)


def _import_summary():
    """`tf.summary`, imported on first use: TensorFlow is needed for it alone."""
    try:
        import tensorboard  # noqa: F401  (tf.summary.image needs it)
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "TensorBoardImageLogger writes its summaries with `tf.summary`, "
            "which needs TensorFlow and TensorBoard: "
            "`pip install tensorflow tensorboard`."
        ) from error
    if keras.backend.backend() != "tensorflow":
        # TensorFlow only writes files here; initializing its GPU devices would
        # take the GPU memory the JAX or PyTorch backend trains with.
        # RuntimeError: TensorFlow was initialized before; leave it be.
        with contextlib.suppress(RuntimeError):
            tf.config.set_visible_devices([], "GPU")
    return tf.summary


# -- Gradients -----------------------------------------------------------------


def _loss_gradient_function(model):
    """A function `(x, y) -> gradients` of the model's compiled loss.

    Gradients for `model.trainable_variables`, as NumPy arrays (None where the
    loss does not depend on a variable), with the model in inference mode so
    that nothing is updated (batch statistics, seed generators). Built once
    per training, so that JAX compiles it once.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def loss(trainable, non_trainable, metrics, x, y):
            value, _ = model.compute_loss_and_updates(
                trainable, non_trainable, metrics, x, y, None, training=False
            )
            return value

        gradient = jax.jit(jax.grad(loss))

        def gradients(x, y):
            states = (
                model.trainable_variables,
                model.non_trainable_variables,
                model.metrics_variables,
            )
            return gradient(*([v.value for v in state] for state in states), x, y)

    elif backend == "tensorflow":
        import tensorflow as tf

        def gradients(x, y):
            with tf.GradientTape() as tape:
                y_pred = model(x, training=False)
                value = model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
            return tape.gradient(value, model.trainable_variables)

    else:  # torch
        import torch

        def gradients(x, y):
            x, y = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)
            with torch.enable_grad():
                y_pred = model(x, training=False)
                value = model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
                variables = [v.value for v in model.trainable_variables]
                return torch.autograd.grad(value, variables, allow_unused=True)

    return lambda x, y: [
        None if g is None else keras.ops.convert_to_numpy(g) for g in gradients(x, y)
    ]


# -- Rendering -----------------------------------------------------------------


def _display_images(x, data_format):
    """Model inputs as RGB uint8 images for display, shape (n, h, w, 3)."""
    x = np.asarray(x, dtype="float32")
    if data_format == "channels_first":
        x = np.transpose(x, (0, 2, 3, 1))  # (n, h, w, c)
    x = x[..., :3] if x.shape[-1] in (3, 4) else x[..., :1]
    x = np.nan_to_num(x)
    low, high = x.min(), x.max()
    if low >= 0 and high <= 1:
        x = x * 255
    elif low < 0 or high > 255:  # e.g. standardized: each image to its range
        low = x.min(axis=(1, 2, 3), keepdims=True)
        high = x.max(axis=(1, 2, 3), keepdims=True)
        x = (x - low) / np.maximum(high - low, 1e-12) * 255
    x = np.clip(np.round(x), 0, 255).astype("uint8")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return x


def _fit(draw, text, font, width):
    """`text`, shortened with '..' until it fits in `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "..", font=font) > width:
        text = text[:-1]
    return text + ".."


def _label(index, class_names):
    return str(index) if class_names is None else class_names[index]


def _prediction_grid(images, labels, predicted, class_names):
    """A grid of the images with borders and labels, (height, width, 3) uint8.

    Each cell is the image enlarged to at least `_MIN_SIZE` pixels, framed by a
    `_BORDER`-pixel border and followed by two lines of text; the grid has
    `ceil(sqrt(n))` columns.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    count, height, width, _ = images.shape
    scale = max(1, math.ceil(_MIN_SIZE / max(height, width)))
    images = images.repeat(scale, axis=1).repeat(scale, axis=2)  # (n, hs, ws, 3)
    height, width = height * scale, width * scale
    cell_width = width + 2 * _BORDER
    cell_height = height + 2 * _BORDER + 2 * _LINE
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    canvas = np.full(
        (
            rows * (cell_height + _GAP) + _GAP,
            columns * (cell_width + _GAP) + _GAP,
            3,
        ),
        255,
        dtype="uint8",
    )
    corners = []
    for index in range(count):
        row, column = divmod(index, columns)
        top = _GAP + row * (cell_height + _GAP)
        left = _GAP + column * (cell_width + _GAP)
        color = _RIGHT if labels[index] == predicted[index] else _WRONG
        canvas[top : top + height + 2 * _BORDER, left : left + cell_width] = color
        canvas[
            top + _BORDER : top + _BORDER + height,
            left + _BORDER : left + _BORDER + width,
        ] = images[index]
        corners.append((left, top + height + 2 * _BORDER, color))
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for index, (left, top, color) in enumerate(corners):
        true = _label(labels[index], class_names)
        guess = _label(predicted[index], class_names)
        draw.text(
            (left, top),
            _fit(draw, f"true: {true}", font, cell_width),
            fill=(0, 0, 0),
            font=font,
        )
        draw.text(
            (left, top + _LINE),
            _fit(draw, f"pred: {guess}", font, cell_width),
            fill=color,
            font=font,
        )
    return np.asarray(image)


def _confusion_image(matrix, class_names):
    """A heat map of a (true, predicted) count matrix, (height, width, 3) uint8.

    Shade: each count's fraction of its row (white for none); text: the counts,
    where they fit. Rows are labelled `index: name`, columns by index.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    classes = len(matrix)
    cell = max(1, min(_CM_MAX_CELL, _CM_SIZE // classes))
    fractions = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    shades = 255 + fractions[..., None] * (_CM_DARK - 255)  # (classes, classes, 3)
    size = classes * cell
    canvas = np.full(
        (_CM_TOP + size + _CM_PAD, _CM_LEFT + size + _CM_PAD, 3), 255, dtype="uint8"
    )
    canvas[_CM_TOP : _CM_TOP + size, _CM_LEFT : _CM_LEFT + size] = (
        np.round(shades).astype("uint8").repeat(cell, axis=0).repeat(cell, axis=1)
    )
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    draw.text((2, 1), "rows: true, columns: predicted", fill=(0, 0, 0), font=font)
    if cell >= _LINE:
        for index in range(classes):
            middle = index * cell + cell // 2
            name = "" if class_names is None else f": {class_names[index]}"
            draw.text(
                (2, _CM_TOP + middle - _LINE // 2),
                _fit(draw, f"{index}{name}", font, _CM_LEFT - 4),
                fill=(0, 0, 0),
                font=font,
            )
            _centered(draw, font, str(index), _CM_LEFT + middle, _CM_TOP - _LINE // 2)
        for (row, column), count in np.ndenumerate(matrix):
            text = str(count)
            if draw.textlength(text, font=font) > cell - 2:
                continue
            _centered(
                draw,
                font,
                text,
                _CM_LEFT + column * cell + cell // 2,
                _CM_TOP + row * cell + cell // 2,
                fill=(255, 255, 255) if fractions[row, column] > 0.5 else (0, 0, 0),
            )
    return np.asarray(image)


def _centered(draw, font, text, x, y, fill=(0, 0, 0)):
    # Centered by hand: text anchors need a FreeType font, and the default
    # font is a bitmap one where Pillow lacks FreeType.
    left = x - draw.textlength(text, font=font) / 2
    draw.text((round(left), y - _LINE // 2), text, fill=fill, font=font)
