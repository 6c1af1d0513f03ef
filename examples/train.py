"""Train a small residual CNN built from keras_blocks on scikit-learn's digits.

The 1,797 8x8 handwritten digits ship with scikit-learn, so this runs offline.
The network is a stem, two basic residual blocks (the second strided, with
squeeze-and-excitation) and a bottleneck block, then global average pooling
and a softmax classifier.

    python examples/train.py                 # the demo: summary, training, accuracy
    python examples/train.py --epochs 1      # a quick smoke run
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from keras_blocks import layers

EPOCHS = 20
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
TEST_FRACTION = 0.2
SEED = 0


def load_digits(seed=SEED):
    """Digits as float32 images in [0, 1], split into train and test sets."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]  # (n, 8, 8, 1)
    return train_test_split(
        images,
        digits.target,
        test_size=TEST_FRACTION,
        stratify=digits.target,
        random_state=seed,
    )


def build_model(input_shape=(8, 8, 1), classes=10):
    inputs = keras.Input(input_shape)
    x = layers.ConvBNAct(32, 3, name="stem")(inputs)  # (8, 8, 32)
    x = layers.ResidualBlock(32, name="res1")(x)  # (8, 8, 32)
    x = layers.ResidualBlock(64, strides=2, se_ratio=0.25, name="res2")(x)  # (4, 4, 64)
    x = layers.BottleneckBlock(16, name="bottleneck")(x)  # (4, 4, 64)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="digits_resnet")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    x_train, x_test, y_train, y_test = load_digits(args.seed)
    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.summary()
    start = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_split=0.1,
        verbose=2,
    )
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(
        f"Backend {keras.config.backend()}: test accuracy {accuracy:.4f} on "
        f"{len(x_test)} held-out digits after {args.epochs} epochs ({seconds:.0f} s)."
    )
    return accuracy


if __name__ == "__main__":
    main()
