"""The datasets the examples train on, as float32 RGB images in [0, 1].

- `digits`: scikit-learn's 1,797 bundled 8x8 handwritten digits (offline),
  split 80/20 into train and test sets, stratified.
- `cifar10`: 50,000 + 10,000 32x32 colour images, through
  `keras.datasets.cifar10` (downloads once), or from a local copy of the
  "CIFAR-10 python version" (`--data-dir`, the extracted
  `cifar-10-batches-py` folder) when offline.

Images are resized to the model's input (bilinear) and laid out in the
configured `keras.config.image_data_format()`.
"""

import pickle
from pathlib import Path

import keras
import numpy as np

from examples._cli import DATASETS

CLASSES = {"digits": 10, "cifar10": 10}
NATIVE_SIZE = {"digits": 8, "cifar10": 32}
# Whether a left-right mirror keeps an image's class: not for digits (a
# mirrored 2, 3, 4, 5, 7 or 9 is no digit), so augmentation and test-time
# crops leave mirrors out there.
MIRROR_INVARIANT = {"digits": False, "cifar10": True}
TEST_FRACTION = 0.2
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
RESIZE_CHUNK = 256  # images resized at a time, to bound memory at large sizes


class DatasetUnavailableError(RuntimeError):
    """The dataset is neither cached nor downloadable; the message says what to do."""


def load(name, image_size=None, data_dir=None, seed=0):
    """`(x_train, y_train), (x_test, y_test)` of dataset `name`.

    Args:
        name: str. One of `DATASETS`.
        image_size: int or None. Square size to resize to; None keeps the
            dataset's own size.
        data_dir: str or None. For `cifar10`: a local copy to read instead of
            downloading.
        seed: int. The digits train/test split.
    """
    if name not in DATASETS:
        raise ValueError(
            f"Invalid value for argument `name`. Expected one of {DATASETS}. "
            f"Received: name={name!r}"
        )
    if name == "digits":
        (x_train, y_train), (x_test, y_test) = _digits(seed)
    else:
        (x_train, y_train), (x_test, y_test) = load_cifar10(data_dir)
    return (
        (_prepare(x_train, image_size), y_train),
        (_prepare(x_test, image_size), y_test),
    )


def _digits(seed):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")  # (n, 8, 8) in [0, 1]
    images = np.repeat(images[..., None], 3, axis=-1)  # (n, 8, 8, 3): grey as RGB
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        digits.target,
        test_size=TEST_FRACTION,
        stratify=digits.target,
        random_state=seed,
    )
    return (x_train, y_train), (x_test, y_test)


def load_cifar10(data_dir=None):
    """CIFAR-10 as float32 images in [0, 1] (NHWC) and int labels.

    Reads `data_dir` (the extracted `cifar-10-batches-py` folder, or a folder
    holding it) when given, else `keras.datasets.cifar10.load_data()`.

    Raises:
        DatasetUnavailableError: when the download fails (offline) or `data_dir`
            does not hold the dataset; the message says how to fix it.
    """
    if data_dir is None:
        try:
            (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
        except Exception as error:  # URLError, HTTPError, socket errors...
            raise DatasetUnavailableError(
                f"CIFAR-10 could not be downloaded ({type(error).__name__}: "
                f"{error}). Without internet access, download {CIFAR10_URL} on "
                "another machine, extract it, and pass --data-dir "
                f"path/to/{CIFAR10_FOLDER}."
            ) from error
    else:
        (x_train, y_train), (x_test, y_test) = _read_cifar10_folder(Path(data_dir))
    return (
        (x_train.astype("float32") / 255.0, y_train.reshape(-1).astype("int64")),
        (x_test.astype("float32") / 255.0, y_test.reshape(-1).astype("int64")),
    )


def _read_cifar10_folder(path):
    folder = path if (path / "test_batch").exists() else path / CIFAR10_FOLDER
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DatasetUnavailableError(
            f"{path} does not hold the CIFAR-10 python version: missing "
            f"{', '.join(missing)}. Extract {CIFAR10_URL} and pass the "
            f"{CIFAR10_FOLDER} folder."
        )
    batches = []
    for name in names:
        with open(folder / name, "rb") as file:
            batch = pickle.load(file, encoding="bytes")
        # Rows of 3072 bytes: 1024 red, 1024 green, 1024 blue, row-major.
        images = np.asarray(batch[b"data"], "uint8").reshape(-1, 3, 32, 32)
        batches.append((images.transpose(0, 2, 3, 1), np.asarray(batch[b"labels"])))
    x_train = np.concatenate([images for images, _ in batches[:-1]])
    y_train = np.concatenate([labels for _, labels in batches[:-1]])
    return (x_train, y_train), batches[-1]


def _prepare(images, image_size):
    """Resizes NHWC images and lays them out in the configured format."""
    if image_size is not None and image_size != images.shape[1]:
        images = np.concatenate(
            [
                keras.ops.convert_to_numpy(
                    keras.ops.image.resize(
                        images[start : start + RESIZE_CHUNK],
                        (image_size, image_size),
                        data_format="channels_last",
                    )
                )
                for start in range(0, len(images), RESIZE_CHUNK)
            ]
        )
    if keras.config.image_data_format() == "channels_first":
        images = images.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(images, dtype="float32")
