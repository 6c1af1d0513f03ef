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
from tests.porting.torch_references import torchvision


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


# ten_crop, and multi_crop where no square is resized, slice NumPy arrays;
# the arguments and labels are checked in NumPy, before (or after) the model
# runs: the same under any backend. A model's predictions, a resize, a dataset
# converted batch by batch stay on every backend.
NUMPY_SLICES = pytest.mark.backend_independent(
    reason="the crops are NumPy slices (tta._crops), without a resize"
)
CHECKED_IN_NUMPY = pytest.mark.backend_independent(
    reason="the arguments and labels are checked in Python and NumPy"
)


@NUMPY_SLICES
def test_ten_crop_is_the_corners_the_centre_and_their_mirrors():
    images = image_batch()  # (2, 7, 9, 3)
    crops = ten_crop(images, 5, "channels_last")
    # The paper's patches, written as NumPy slices of the (7, 9) image:
    top_left, top_right = images[:, 0:5, 0:5], images[:, 0:5, 4:9]
    bottom_left, bottom_right = images[:, 2:7, 0:5], images[:, 2:7, 4:9]
    centre = images[:, 1:6, 2:7]
    expected = [top_left, top_right, bottom_left, bottom_right, centre]
    # Then torchvision's order: the five crops of the mirrored image, whose
    # top left is the mirror of the top right.
    expected += [
        patch[:, :, ::-1]
        for patch in (top_right, top_left, bottom_right, bottom_left, centre)
    ]
    assert crops.shape == (10, 2, 5, 5, 3)
    for index, patch in enumerate(expected):
        np.testing.assert_array_equal(crops[index], patch, err_msg=f"crop {index}")
    # Without mirrors: the five crops, for classes a mirror changes (digits).
    five = ten_crop(images, 5, "channels_last", mirror=False)
    np.testing.assert_array_equal(five, crops[:5])


@NUMPY_SLICES
def test_ten_crop_takes_rectangles_and_channels_first():
    images = image_batch()
    first = ten_crop(images.transpose(0, 3, 1, 2), (5, 7), "channels_first")
    last = ten_crop(images, (5, 7), "channels_last")
    assert first.shape == (10, 2, 3, 5, 7)
    np.testing.assert_array_equal(first.transpose(0, 1, 3, 4, 2), last)
    np.testing.assert_array_equal(last[3], images[:, 2:7, 2:9])


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


@pytest.mark.backend_independent(
    reason="crop counts and NumPy slices; the resize's values: test_multi_crop_is_googlenets_144_crops"
)
def test_multi_crop_defaults_are_the_papers_for_224_crops():
    assert crop_count("multi_crop") == 144
    assert crop_count("ten_crop") == 10
    assert crop_count("ten_crop", mirror=False) == 5
    assert crop_count("center_crop") == 1
    # Portrait images: squares from top, centre and bottom (the centre at
    # torchvision's CenterCrop offset: half the margin 3, 1.5, rounds to 2).
    images = image_batch(batch=1, height=6, width=3)
    crops = multi_crop(
        images, 3, scales=(3,), mirror=False, data_format="channels_last"
    )
    assert crops.shape == (18, 1, 3, 3, 3)
    np.testing.assert_array_equal(crops[0], images[:, 0:3])
    np.testing.assert_array_equal(crops[6], images[:, 2:5])
    np.testing.assert_array_equal(crops[12], images[:, 3:6])
    # The default scales at crop 16 are 256, 288, 320, 352 x 16 / 224.
    crops = multi_crop(np.zeros((1, 16, 16, 3)), 16, squares=1, mirror=False)
    assert crops.shape == (4 * 6, 1, 16, 16, 3)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.backends(
    "jax",
    "torch",
    reason="channels_first Conv2D: TensorFlow's CPU convolutions take channels-last only",
)
def test_channels_first_model():
    images = np.random.default_rng(4).uniform(size=(3, 3, 9, 9)).astype("float32")
    model = probe_model(7, data_format="channels_first")
    by_hand = np.mean(
        [model.predict_on_batch(c) for c in ten_crop(images, 7, "channels_first")],
        axis=0,
    )
    np.testing.assert_allclose(
        predict_with_tta(model, images, data_format="channels_first"),
        by_hand,
        atol=1e-6,
    )


@CHECKED_IN_NUMPY
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
@CHECKED_IN_NUMPY
def test_bad_arguments(kwargs, message):
    model = probe_model(7)
    with pytest.raises(ValueError, match=message):
        predict_with_tta(model, np.zeros((1, 9, 9, 3), "float32"), **kwargs)


@CHECKED_IN_NUMPY
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


def torchvision_functional():
    """torchvision.transforms.v2.functional (see torch_references)."""
    torchvision()
    import torchvision.transforms.v2.functional as functional

    return functional


# (height, width, crop): even margins, odd ones (1 and 3 modulo 4: halves of
# margins that torchvision's CenterCrop rounds down and up) and the issue's
# 41x45 to 32, with square and non-square crops.
TORCHVISION_CASES = [
    (7, 9, 5),  # margins 2, 4
    (8, 10, (5, 5)),  # 3, 5
    (41, 45, 32),  # 9, 13
    (9, 12, (4, 5)),  # 5, 7
    (6, 9, (6, 2)),  # 0, 7
    (11, 8, (4, 7)),  # 7, 1
]


@NUMPY_SLICES
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("height, width, crop", TORCHVISION_CASES)
def test_ten_crop_is_torchvisions_ten_crop(height, width, crop, data_format):
    functional = torchvision_functional()
    import torch

    images = image_batch(height=height, width=width)  # (2, h, w, 3)
    chw = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    size = [crop, crop] if isinstance(crop, int) else list(crop)
    expected = [
        c.numpy() for c in functional.ten_crop(torch.from_numpy(chw), size)
    ]  # (2, 3, h, w) each: five crops, then five of the mirrored image
    given = images if data_format == "channels_last" else chw
    crops = ten_crop(given, crop, data_format)
    five = ten_crop(given, crop, data_format, mirror=False)
    if data_format == "channels_last":
        crops, five = crops.transpose(0, 1, 4, 2, 3), five.transpose(0, 1, 4, 2, 3)
    assert crops.shape == (10, 2, 3, *size)
    for index, patch in enumerate(expected):
        np.testing.assert_array_equal(crops[index], patch, err_msg=f"crop {index}")
    five_crop = functional.five_crop(torch.from_numpy(chw), size)
    np.testing.assert_array_equal(five, np.stack([c.numpy() for c in five_crop]))


@pytest.mark.parametrize("height, width, crop", TORCHVISION_CASES)
def test_the_centre_crop_is_torchvisions_center_crop(height, width, crop):
    functional = torchvision_functional()
    import torch

    images = image_batch(batch=1, height=height, width=width)
    size = [crop, crop] if isinstance(crop, int) else list(crop)
    chw = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    expected = functional.center_crop(chw, size).numpy().transpose(0, 2, 3, 1)
    # The centre crop of the "center_crop" scheme, seen through a model that
    # returns its input (flattened; the softmax of one crop is not needed).
    got = predict_with_tta(
        keras.Sequential([keras.Input((*size, 3)), keras.layers.Flatten()]),
        images,
        "center_crop",
    )
    np.testing.assert_array_equal(got, expected.reshape(1, -1))
    # Keras' CenterCrop floors half the margin: one pixel before torchvision's
    # where a margin is 3 modulo 4 (half of it, x.5, rounds up to even).
    centre = keras.ops.convert_to_numpy(
        keras.layers.CenterCrop(*size, data_format="channels_last")(images)
    )
    margins = (height - size[0], width - size[1])
    if all(margin % 4 != 3 for margin in margins):
        np.testing.assert_array_equal(centre, expected)
    else:
        assert not np.array_equal(centre, expected)


@NUMPY_SLICES
def test_multi_crop_takes_squares_and_crops_at_torchvisions_offsets():
    functional = torchvision_functional()
    import torch

    # The shorter side is the scale, so no resize: the squares are the left,
    # torchvision's CenterCrop and the right of the image, and each square's
    # five crops are torchvision's FiveCrop (margin 3 along the image, 3 in
    # each square: offsets that Keras' CenterCrop would floor).
    images = image_batch(batch=1, height=7, width=10)
    crops = multi_crop(
        images, 4, scales=(7,), mirror=False, data_format="channels_last"
    )
    chw = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    squares = [chw[..., 0:7], functional.center_crop(chw, [7, 7]), chw[..., 3:10]]
    for index, square in enumerate(squares):
        expected = np.stack([c.numpy() for c in functional.five_crop(square, [4, 4])])
        np.testing.assert_array_equal(
            crops[6 * index : 6 * index + 5].transpose(0, 1, 4, 2, 3),
            expected,
            err_msg=f"square {index}",
        )


def test_multi_crop_rounds_the_longer_side_to_nearest():
    functional = torchvision_functional()
    import torch

    # 2 x 5 to a shorter side of 3: the longer side is 7.5, rounded to 8
    # (Python's round: halves to even); 3 x 5 to 4: 6.67, rounded to 7.
    # torchvision's Resize truncates (7 and 6).
    for (height, width), scale, longer, truncated in (
        ((2, 5), 3, 8, 7),
        ((3, 5), 4, 7, 6),
    ):
        images = image_batch(batch=1, height=height, width=width)
        crops = multi_crop(
            images,
            scale,
            scales=(scale,),
            mirror=False,
            interpolation="nearest",
            data_format="channels_last",
        )
        resized = keras.ops.convert_to_numpy(
            keras.ops.image.resize(
                images, (scale, longer), "nearest", data_format="channels_last"
            )
        )
        # The right square (square 2's first crop: the whole square here).
        np.testing.assert_array_equal(crops[12], resized[:, :, longer - scale :])
        tv = functional.resize(torch.zeros(1, 3, height, width), [scale])
        assert tuple(tv.shape[-2:]) == (scale, truncated)


@CHECKED_IN_NUMPY
def test_labels_must_be_whole_class_ids_or_one_hot_rows():
    model = probe_model(7)
    images = np.random.default_rng(5).uniform(size=(4, 9, 9, 3)).astype("float32")
    ids = np.array([0, 3, 1, 2])
    expected = evaluate_with_tta(model, images, ids).accuracy
    # Accepted: integer ids of any integer dtype, whole floats, (n, 1)
    # columns, one-hot rows, and the same from a dataset.
    for labels in (
        ids.astype("int32"),
        ids.astype("uint8"),
        ids.astype("float32"),
        ids.reshape(4, 1).astype("float64"),
        np.eye(4, dtype="float32")[ids],
    ):
        assert evaluate_with_tta(model, images, labels).accuracy == expected
    prefix = (
        "Invalid value for argument `labels`. Expected integer class ids "
        "(whole numbers) or one-hot rows. Received: "
    )
    smoothed = np.eye(4)[ids] * 0.9 + 0.025  # label smoothing: not one-hot
    for labels, received in (
        (ids + 0.9, "labels[0]=0.9"),
        (ids.reshape(4, 1) + np.array([[0], [0], [0.5], [0]]), "labels[2]=1.5"),
        (np.array([0, 1, np.nan, 2]), "labels[2]=nan"),
        (np.array([0, 1, 2, np.inf]), "labels[3]=inf"),
        (smoothed, "labels[0]=[0.925, 0.025, 0.025, 0.025]"),
        (np.eye(4)[ids] * 2, "labels[0]=[2.0, 0.0, 0.0, 0.0]"),
        (np.zeros((4, 4)), "labels[0]=[0.0, 0.0, 0.0, 0.0]"),
        (np.full((4, 12), 0.5), "labels[0]=[" + "0.5, " * 8 + "...]"),
        (np.array(["0", "3", "1", "2"]), "labels of dtype <U1"),
    ):
        with pytest.raises(ValueError) as error:
            evaluate_with_tta(model, images, labels)
        assert str(error.value) == prefix + received
    # In a dataset, the index counts from the dataset's first label.
    dataset = tf.data.Dataset.from_tensor_slices((images, ids + 0.5)).batch(3)
    with pytest.raises(ValueError) as error:
        evaluate_with_tta(model, dataset)
    assert str(error.value) == prefix + "labels[0]=0.5"
    dataset = tf.data.Dataset.from_tensor_slices(
        (images, np.array([0, 3, 1, 2.5]))
    ).batch(3)
    with pytest.raises(ValueError) as error:
        evaluate_with_tta(model, dataset)
    assert str(error.value) == prefix + "labels[3]=2.5"
