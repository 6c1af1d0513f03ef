"""Test-time augmentation: the crops against NumPy slices written from the papers,
the averaged predictions against a model run on each crop by hand."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_blocks.evaluation import (
    crop_count,
    evaluate_with_tta,
    multi_crop,
    predict_with_tta,
    ten_crop,
)


def image_batch(batch=2, height=7, width=9, channels=3):
    """Distinct values everywhere, so a wrong slice cannot match."""
    return np.arange(batch * height * width * channels, dtype="float32").reshape(
        batch, height, width, channels
    )


def probe_model(size, classes=4, data_format="channels_last"):
    """A fixed classifier whose output depends on position and colour."""
    shape = (size, size, 3) if data_format == "channels_last" else (3, size, size)
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Conv2D(4, 3, data_format=data_format),
            keras.layers.Flatten(),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )


def test_ten_crop_is_the_corners_the_centre_and_their_mirrors():
    images = image_batch()  # (2, 7, 9, 3)
    crops = ten_crop(images, 5, "channels_last")
    # The paper's patches, written as NumPy slices of the (7, 9) image:
    expected = [
        images[:, 0:5, 0:5],  # top left
        images[:, 0:5, 4:9],  # top right
        images[:, 2:7, 0:5],  # bottom left
        images[:, 2:7, 4:9],  # bottom right
        images[:, 1:6, 2:7],  # centre
    ]
    expected += [patch[:, :, ::-1] for patch in expected]
    assert crops.shape == (10, 2, 5, 5, 3)
    for index, patch in enumerate(expected):
        np.testing.assert_array_equal(crops[index], patch, err_msg=f"crop {index}")
    # Without mirrors: the five crops, for classes a mirror changes (digits).
    five = ten_crop(images, 5, "channels_last", mirror=False)
    np.testing.assert_array_equal(five, crops[:5])


def test_ten_crop_takes_rectangles_and_channels_first():
    images = image_batch()
    first = ten_crop(images.transpose(0, 3, 1, 2), (5, 7), "channels_first")
    last = ten_crop(images, (5, 7), "channels_last")
    assert first.shape == (10, 2, 3, 5, 7)
    np.testing.assert_array_equal(first.transpose(0, 1, 3, 4, 2), last)
    np.testing.assert_array_equal(last[3], images[:, 2:7, 2:9])


def test_ten_crop_centre_is_keras_center_crop():
    images = image_batch(height=10, width=11)
    centre = keras.layers.CenterCrop(5, 6, data_format="channels_last")(images)
    np.testing.assert_array_equal(
        ten_crop(images, (5, 6), "channels_last")[4], keras.ops.convert_to_numpy(centre)
    )


def test_multi_crop_is_googlenets_144_crops():
    # A landscape image of 2 x 4 pixels; its shorter side resized to 4 with
    # nearest-neighbour sampling is exactly a 2x repeat: 4 x 8.
    images = image_batch(batch=1, height=2, width=4)
    crops = multi_crop(
        images, 2, scales=(2, 4), interpolation="nearest", data_format="channels_last"
    )
    assert (
        crops.shape
        == (2 * 3 * 6 * 2, 1, 2, 2, 3)
        == (crop_count("multi_crop", scales=(2, 4)), 1, 2, 2, 3)
    )
    # Scale 4: each pixel repeated 2x2 (nearest) -> (4, 8); squares of 4 at
    # the left, centre and right (columns 0, 2, 4).
    big = images.repeat(2, axis=1).repeat(2, axis=2)
    expected = []
    for scale, resized in ((2, images), (4, big)):
        for left in (0, (resized.shape[2] - scale) // 2, resized.shape[2] - scale):
            square = resized[:, :, left : left + scale]
            c = (scale - 2) // 2
            expected += [
                square[:, 0:2, 0:2],
                square[:, 0:2, scale - 2 : scale],
                square[:, scale - 2 : scale, 0:2],
                square[:, scale - 2 : scale, scale - 2 : scale],
                square[:, c : c + 2, c : c + 2],
                # The whole square at the crop size: Keras' resize at scale 4.
                keras.ops.convert_to_numpy(
                    keras.ops.image.resize(
                        square,
                        (2, 2),
                        interpolation="nearest",
                        data_format="channels_last",
                    )
                ),
            ]
    expected += [patch[:, :, ::-1] for patch in expected]
    for index, patch in enumerate(expected):
        np.testing.assert_array_equal(crops[index], patch, err_msg=f"crop {index}")


def test_multi_crop_defaults_are_the_papers_for_224_crops():
    assert crop_count("multi_crop") == 144
    assert crop_count("ten_crop") == 10
    assert crop_count("ten_crop", mirror=False) == 5
    assert crop_count("center_crop") == 1
    # Portrait images: squares from top, centre and bottom.
    images = image_batch(batch=1, height=6, width=3)
    crops = multi_crop(
        images, 3, scales=(3,), mirror=False, data_format="channels_last"
    )
    assert crops.shape == (18, 1, 3, 3, 3)
    np.testing.assert_array_equal(crops[0], images[:, 0:3])
    np.testing.assert_array_equal(crops[6], images[:, 1:4])
    np.testing.assert_array_equal(crops[12], images[:, 3:6])
    # The default scales at crop 16 are 256, 288, 320, 352 x 16 / 224.
    crops = multi_crop(np.zeros((1, 16, 16, 3)), 16, squares=1, mirror=False)
    assert crops.shape == (4 * 6, 1, 16, 16, 3)


def test_predictions_average_the_softmax_of_every_crop():
    images = np.random.default_rng(0).uniform(size=(5, 9, 9, 3)).astype("float32")
    model = probe_model(7)
    by_hand = np.mean(
        [model.predict_on_batch(crop) for crop in ten_crop(images, 7, "channels_last")],
        axis=0,
    )
    # Batches of 2 (the last one short) must not change anything.
    np.testing.assert_allclose(
        predict_with_tta(model, images, "ten_crop", batch_size=2), by_hand, atol=1e-6
    )
    crops = multi_crop(images, 7, scales=(7, 9), interpolation="nearest")
    by_hand = np.mean([model.predict_on_batch(crop) for crop in crops], axis=0)
    np.testing.assert_allclose(
        predict_with_tta(
            model, images, "multi_crop", scales=(7, 9), interpolation="nearest"
        ),
        by_hand,
        atol=1e-6,
    )
    centre = model.predict_on_batch(images[:, 1:8, 1:8])
    np.testing.assert_allclose(
        predict_with_tta(model, images, "center_crop"), centre, atol=1e-6
    )


def test_from_logits_applies_a_softmax_per_crop():
    images = np.random.default_rng(1).uniform(size=(3, 8, 8, 3)).astype("float32")
    model = probe_model(7)
    logits = keras.Model(model.inputs, model.layers[-1].output)  # same Dense
    logits.layers[-1].activation = keras.activations.linear
    crops = ten_crop(images, 7, "channels_last")
    by_hand = np.mean(
        [
            keras.ops.convert_to_numpy(keras.ops.softmax(logits.predict_on_batch(c)))
            for c in crops
        ],
        axis=0,
    )
    np.testing.assert_allclose(
        predict_with_tta(logits, images, from_logits=True), by_hand, atol=1e-5
    )


def test_accuracy_counts_argmax_of_the_averaged_softmax():
    images = np.random.default_rng(2).uniform(size=(6, 9, 9, 3)).astype("float32")
    model = probe_model(7)
    predictions = predict_with_tta(model, images)
    labels = np.argmax(predictions, axis=-1)
    labels[:2] = (labels[:2] + 1) % 4  # two wrong
    result = evaluate_with_tta(model, images, labels)
    assert result.accuracy == pytest.approx(4 / 6)
    np.testing.assert_allclose(result.predictions, predictions)
    one_hot = np.eye(4)[labels]
    assert evaluate_with_tta(model, images, one_hot).accuracy == pytest.approx(4 / 6)


def test_a_dataset_of_batches_gives_what_arrays_give():
    images = np.random.default_rng(3).uniform(size=(7, 9, 9, 3)).astype("float32")
    labels = np.arange(7) % 4
    model = probe_model(7)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(3)
    from_arrays = evaluate_with_tta(model, images, labels, batch_size=4)
    from_dataset = evaluate_with_tta(model, dataset)
    np.testing.assert_allclose(
        from_dataset.predictions, from_arrays.predictions, atol=1e-6
    )
    assert from_dataset.accuracy == from_arrays.accuracy


def test_channels_first_model():
    images = np.random.default_rng(4).uniform(size=(3, 3, 9, 9)).astype("float32")
    model = probe_model(7, data_format="channels_first")
    if keras.config.backend() == "tensorflow":
        # TensorFlow's CPU convolutions take channels-last only.
        pytest.skip("channels_first Conv2D needs a GPU on TensorFlow")
    by_hand = np.mean(
        [model.predict_on_batch(c) for c in ten_crop(images, 7, "channels_first")],
        axis=0,
    )
    np.testing.assert_allclose(
        predict_with_tta(model, images, data_format="channels_first"),
        by_hand,
        atol=1e-6,
    )


def test_the_crop_size_defaults_to_the_models_input():
    model = probe_model(7)
    with pytest.raises(ValueError, match="Expected at most the images' size"):
        predict_with_tta(model, np.zeros((1, 6, 6, 3), "float32"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scheme": "five_crop"}, "Invalid value for argument `scheme`"),
        ({"batch_size": 0}, "Invalid value for argument `batch_size`"),
        ({"crop_size": (7,)}, "Invalid value for argument `crop_size`"),
        ({"scheme": "ten_crop", "scales": (8,)}, "scheme='ten_crop' takes mirror"),
        ({"scheme": "center_crop", "mirror": False}, "Unexpected keyword arguments"),
        ({"scheme": "ten_crop", "mirror": 0}, "Invalid value for argument `mirror`"),
        (
            {"scheme": "multi_crop", "scales": (6,)},
            "Invalid value for argument `scales`",
        ),
        (
            {"scheme": "multi_crop", "squares": 2},
            "Invalid value for argument `squares`",
        ),
    ],
)
def test_bad_arguments(kwargs, message):
    model = probe_model(7)
    with pytest.raises(ValueError, match=message):
        predict_with_tta(model, np.zeros((1, 9, 9, 3), "float32"), **kwargs)


def test_labels_must_match_the_images():
    model = probe_model(7)
    images = np.zeros((3, 9, 9, 3), "float32")
    with pytest.raises(ValueError, match="Expected one label per image"):
        evaluate_with_tta(model, images, np.zeros(2))
    with pytest.raises(ValueError, match="Expected the labels of `images`"):
        evaluate_with_tta(model, images)
    with pytest.raises(ValueError, match=r"Expected class ids in \[0, 4\)"):
        evaluate_with_tta(model, images, np.array([0, 1, 4]))  # 4 classes
    with pytest.raises(ValueError, match="the scheme goes in `scheme=`"):
        evaluate_with_tta(model, images, "ten_crop")  # labels forgotten
