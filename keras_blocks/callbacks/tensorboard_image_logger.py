"""TensorBoardImageLogger: what a classifier sees and predicts, in TensorBoard."""

import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_blocks import _validation as check
from keras_blocks.callbacks import _validation_data as validation
from keras_blocks.callbacks._gradients import (
    GRADIENT_BACKENDS,
    loss_gradient_function,
)
from keras_blocks.callbacks._prediction import batch_predictor
from keras_blocks.callbacks._rendering import (
    confusion_image,
    display_images,
    prediction_grid,
)
from keras_blocks.callbacks._summaries import (
    histogram_table,
    histogram_writer,
    import_summary,
)
from keras_blocks.distribute import current_cluster


@keras.saving.register_keras_serializable(package="keras_blocks")
class TensorBoardImageLogger(keras.callbacks.Callback):
    """Logs predictions, a confusion matrix and histograms to TensorBoard.

    At the end of selected epochs, writes to `log_dir` (readable with
    `tensorboard --logdir`):

    - `images/predictions` (every `image_freq` epochs): one grid image of a
      fixed sample of `num_images` validation images, chosen once (seeded) and
      kept in their order in `validation_data` (for a dataset: in the order
      of its first reading); each cell has a green border
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
    epoch is always logged, and also at the last epoch of the run, so that
    the final model is always logged: the last of `fit`'s `epochs`, or the
    epoch after which a callback (such as `EarlyStopping`) stopped training;
    one listed after this logger is seen at the end of training, and the
    features are written then, under that epoch's step. A disabled feature
    writes nothing, and the event file is created only when there is
    something to write.

    For the images, the model must be a classifier with a single output of
    shape `(batch, classes)` (probabilities or logits). Summaries are written with
    `tf.summary` (TensorFlow and TensorBoard) on every Keras backend; on the
    JAX and PyTorch backends, TensorFlow is kept off the GPUs when this
    callback is the first to use it, so that it leaves their memory alone.

    Under a distribution strategy or several processes, the predictions are
    those of one device: a TensorFlow strategy's replicas on this process
    each predict a part of a batch (Keras' `predict_on_batch` would give each
    the whole batch and concatenate their outputs), and the gradients are
    those of the whole sample, whether `fit` runs in the strategy's scope or
    not. Only the chief process
    (`keras_blocks.distribute.current_cluster(model).is_chief`) writes to
    `log_dir`; the others compute the same summaries at the same points, so
    that any collective operation in them (a model's own `predict_step`, a
    variable synchronized on read) finds every process, and write none.

    Args:
        log_dir: str or path. Directory the event file is written to.
        validation_data: tuple `(x, y)` of NumPy arrays, or a
            `tf.data.Dataset` of `(x, y)` (or `(x, y, sample_weight)`)
            batches, as `model.fit(validation_data=...)` takes them: 4D
            images `x` in the model's `data_format`, and integer labels `y` of
            shape `(n,)` or `(n, 1)` or one-hot labels of shape `(n, classes)`.
            A dataset is read twice when the logger is made (to count its
            images and draw the fixed sample, then to take the sample's
            images, which are kept) and once more at each confusion matrix,
            batch by batch; sample weights are ignored.
            Images in [0, 1] or [0, 255] are shown as they are; others (such
            as standardized inputs) are rescaled to each image's range.
            Images with 3 or 4 channels are shown as RGB (dropping alpha),
            others as the grayscale of their first channel. The labels are
            passed as they are to the compiled loss for `gradient_histograms`.
            `get_config()` holds the arrays as nested lists with their dtypes
            (Keras' serialization of NumPy arrays), so the config is JSON and
            `from_config` restores the same data: as large as the data, in
            text. A dataset has no config (`get_config()` raises
            `NotImplementedError`).
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
        batch_size: int. Batch size of the predictions (a dataset's batches
            are predicted as they come).
        validation_steps: int or None. With a dataset, the number of batches
            read (from its start) each time; None reads the whole dataset,
            which must then end (one that repeats forever is refused).
            Only for a dataset.

    Raises:
        ValueError: on an invalid argument; at the start of training, when
            `activation_layers` names a layer the model does not have (the
            message lists those it has) or the model is not a classifier that
            matches the labels and `class_names`.
        ImportError: at the start of training, when TensorFlow or TensorBoard
            is missing.
        NotImplementedError: from `get_config()`, when `validation_data` is
            a dataset.

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
        validation_data: Any,
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
        validation_steps: int | None = None,
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
        self.num_images = check.positive_int("num_images", num_images)
        self.seed = check.optional(check.non_negative_int, "seed", seed)
        self.validation_steps = check.optional(
            check.positive_int, "validation_steps", validation_steps
        )
        self.validation_data = validation.checked(
            validation_data, validation_steps, self.data_format
        )
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
            GRADIENT_BACKENDS
        ):
            raise ValueError(
                "Invalid value for argument `gradient_histograms`. Loss "
                f"gradients need one of the backends {GRADIENT_BACKENDS}. "
                f"Received: gradient_histograms=True with the "
                f"{keras.backend.backend()!r} backend"
            )

        self._labels, self._label_width = validation.labels(  # (n,), int or None
            self.validation_data, self.validation_steps, self.data_format
        )
        validation.check_class_names(self.class_names, self._labels, self._label_width)
        self._sample, self._sample_x, self._sample_y = validation.sample(
            self.validation_data,
            self.validation_steps,
            len(self._labels),
            self.num_images,
            self.seed,
        )
        self._display = display_images(self._sample_x, self.data_format)
        self._last_epoch = None  # the last epoch seen, and whether it was
        self._logged_last = False  # logged as the run's last
        self._writer = None
        self._table_writers = {}
        self._summary = None
        self._activation_model = None
        self._gradients = None
        self._cluster = None
        self._predict_batch = self._predict_activations = None

    # -- Training hooks --------------------------------------------------------

    @property
    def _from_dataset(self):
        return not isinstance(self.validation_data, tuple)

    def _batches(self):
        """The dataset's `(x, y)` NumPy batches, `validation_steps` at most."""
        return validation.batches(self.validation_data, self.validation_steps)

    def on_train_begin(self, logs=None):
        self._close_writer()
        self._last_epoch, self._logged_last = None, False
        self._activation_model = self._gradients = None
        self._predict_batch = self._predict_activations = None
        if not (
            self.image_freq
            or self.confusion_matrix_freq
            or self.histogram_freq
            or self.learning_rate
        ):
            return
        self._summary = import_summary()
        model = self.model
        self._cluster = current_cluster(model)
        # The model's strategy, for the activation model built outside its scope.
        strategy = getattr(model, "distribute_strategy", None)
        self._predict_batch = batch_predictor(model, strategy)
        outputs = getattr(model, "outputs", None)  # None for a subclassed model
        if (self.image_freq or self.confusion_matrix_freq) and outputs:
            if len(outputs) != 1:
                raise ValueError(self._not_a_classifier(f"{len(outputs)} outputs"))
            self._check_classes(tuple(outputs[0].shape))
        if self.histogram_freq and self.activation_layers:
            self._activation_model = self._build_activation_model(model)
            self._predict_activations = batch_predictor(
                self._activation_model, strategy
            )
        if self.histogram_freq and self.gradient_histograms:
            self._gradients = loss_gradient_function(model)

    def on_epoch_end(self, epoch, logs=None):
        # The run's last epoch: fit's last, or one a callback listed before
        # this one stopped training after.
        epochs = (self.params or {}).get("epochs")
        last = epoch + 1 == epochs or bool(getattr(self.model, "stop_training", 0))
        self._last_epoch, self._logged_last = epoch, last
        due = (_due(freq, epoch) or (freq > 0 and last) for freq in self._freqs)
        self._write(epoch, *due, learning_rate=self.learning_rate)

    def on_train_end(self, logs=None):
        epoch = self._last_epoch
        if epoch is not None and not self._logged_last:
            # A callback listed after this one stopped training: the features
            # its frequency skipped at this last epoch, with the final model.
            skipped = (freq > 0 and not _due(freq, epoch) for freq in self._freqs)
            self._write(epoch, *skipped, learning_rate=False)  # rate: logged
        self._close_writer()
        self._activation_model = self._gradients = None
        self._predict_batch = self._predict_activations = None

    @property
    def _freqs(self):
        return (self.image_freq, self.confusion_matrix_freq, self.histogram_freq)

    def _write(self, epoch, grid, matrix, histograms, learning_rate):
        """Writes the features flagged, under the step `epoch`."""
        if not (grid or matrix or histograms or learning_rate):
            return
        model = self.model  # on JAX, reading it syncs the trained state back
        if self._writer is None:
            self._writer = self._create_writer()
        with self._writer.as_default():
            if learning_rate:
                rate = keras.ops.convert_to_numpy(model.optimizer.learning_rate)
                self._summary.scalar("learning_rate", float(rate), step=epoch)
            if grid or matrix:
                self._write_images(epoch, grid, matrix)
            if histograms:
                self._write_histograms(model, epoch)
        self._writer.flush()

    def _create_writer(self):
        if self._cluster.is_chief:
            return self._summary.create_file_writer(self.log_dir)
        # Other processes compute all that the chief does, in the same order
        # (predictions, gradients and variable reads may be collective
        # operations, which every process must join), and write nothing: the
        # summaries receive only values computed before them, NumPy arrays and
        # numbers, so writing them holds no collective operation.
        return self._summary.create_noop_writer()

    def _close_writer(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._table_writers = {}  # traced with the writer: made again with it

    # -- Summaries -------------------------------------------------------------

    def _write_images(self, epoch, grid, matrix):
        predicted = None  # of the sample
        if matrix and self._from_dataset:
            counts = sum(  # batch by batch
                self._confusion(labels, self._predict(x))
                for x, labels in self._batches()
            )
        elif matrix:
            x, _ = self.validation_data
            predicted = self._predict(x)
            counts = self._confusion(self._labels, predicted)
            predicted = predicted[self._sample]
        if matrix:
            image = confusion_image(counts, self.class_names)
            self._summary.image("confusion_matrix", image[None], step=epoch)
        if grid:
            if predicted is None:
                predicted = self._predict(self._sample_x)
            labels = validation.integer_labels(self._sample_y)
            image = prediction_grid(self._display, labels, predicted, self.class_names)
            self._summary.image("images/predictions", image[None], step=epoch)

    def _confusion(self, labels, predicted):
        """Counts of (true, predicted) pairs, (classes, classes)."""
        labels = validation.integer_labels(np.asarray(labels))
        classes = self._classes
        validation.check_label_range(labels, classes)  # a dataset's may change
        return np.bincount(
            labels * classes + predicted, minlength=classes * classes
        ).reshape(classes, classes)

    def _write_histograms(self, model, epoch):
        tables = {}  # tag: (buckets, 3) table, written together below
        for variable in model.weights:
            if "float" in str(variable.dtype):  # not counters
                tables[f"weights/{variable.path}"] = histogram_table(variable)
        sample = self._sample_x
        if self._activation_model is not None:
            outputs = _predict(self._predict_activations, sample, self.batch_size)
            if len(self.activation_layers) == 1:
                outputs = [outputs]
            for name, output in zip(self.activation_layers, outputs, strict=True):
                tables[f"activations/{name}"] = histogram_table(output)
        if self._gradients is not None:
            gradients = self._gradients(sample, self._sample_y)
            for variable, gradient in zip(
                model.trainable_variables, gradients, strict=True
            ):
                if gradient is not None:  # None: the loss does not use it
                    tables[f"gradients/{variable.path}"] = histogram_table(gradient)
        self._write_tables(tables, epoch)

    def _write_tables(self, tables, step):
        """Writes histogram tables in one call of a TensorFlow function, traced
        once per writer and set of tags."""
        import tensorflow as tf

        tags = tuple(tables)
        write = self._table_writers.get(tags)
        if write is None:
            write = self._table_writers[tags] = histogram_writer(self._summary, tags)
        write(
            [tf.constant(table) for table in tables.values()],
            tf.constant(step, tf.int64),
        )

    def _predict(self, x):
        """The predicted classes of `x`, shape (n,)."""
        scores = _predict(self._predict_batch, x, self.batch_size)
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
        width = self._label_width
        if width is not None and width != classes:
            raise ValueError(
                f"The model predicts {classes} classes, but the one-hot labels "
                f"of `validation_data` have {width}. Received: "
                f"y.shape=({len(self._labels)}, {width})"
            )
        validation.check_label_range(self._labels, classes)
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
        if self._from_dataset:
            raise NotImplementedError(
                "TensorBoardImageLogger has no config when its `validation_data` "
                "is a tf.data.Dataset, which is not serializable. Give it `(x, y)` "
                "arrays for a config."
            )
        return {
            "log_dir": self.log_dir,
            "validation_data": [
                keras.saving.serialize_keras_object(array)
                for array in self.validation_data
            ],
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
            "validation_steps": self.validation_steps,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        data = config.get("validation_data")
        if isinstance(data, list | tuple):  # arrays pass through unchanged
            config["validation_data"] = tuple(
                keras.saving.deserialize_keras_object(item)
                if isinstance(item, dict)
                else item
                for item in data
            )
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


def _due(freq, epoch):
    return freq > 0 and epoch % freq == 0


def _predict(predict_batch, x, batch_size):
    """`model.predict(x)` without its set-up for each call, which costs a tenth
    of a second on TensorFlow: most of this callback's time at small samples.

    `predict_batch`: a `batch_predictor`, which predicts on this process alone.
    """
    batches = [
        predict_batch(x[start : start + batch_size])
        for start in range(0, len(x), batch_size)
    ]
    return keras.tree.map_structure(lambda *parts: np.concatenate(parts), *batches)
