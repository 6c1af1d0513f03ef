"""The papers' augmentation recipes, checked image by image: every output is a
crop (or a zero-filled shift) of its input at a position the paper allows,
mirrored or not; every position is reached; inference is the centre crop."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_blocks import augmentation
from keras_blocks.layers import PCAColorAugmentation


def distinct_images(count, size, seed=0):
    """Values that differ everywhere, so a crop is found at one position only."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 1, (count, size, size, 3)).astype("float32")


def find_crop(source, output):
    """(top, left, mirrored) of the crop of `source` that `output` is, or None."""
    size = output.shape[0]
    for top, left in itertools.product(range(source.shape[0] - size + 1), repeat=2):
        patch = source[top : top + size, left : left + size]
        for mirrored, candidate in ((False, patch), (True, patch[:, ::-1])):
            if np.array_equal(candidate, output):
                return top, left, mirrored
    return None


def find_shift(source, output, padding):
    """(dy, dx, mirrored) of the zero-filled shift `output` is, or None."""
    size = source.shape[0]
    padded = np.pad(source, ((padding, padding), (padding, padding), (0, 0)))
    found = find_crop(padded, output)
    if found is None:
        return None
    top, left, mirrored = found
    assert padded.shape[0] == size + 2 * padding
    return top - padding, left - padding, mirrored


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


# Keras' RandAugment runs op by op: ~17 s eagerly on JAX, ~60 s to trace in
# tf.data there. The recipe only chains it (its other steps run everywhere).
RAND_AUGMENT_ON_TENSORFLOW = pytest.mark.backends(
    "tensorflow", reason="Keras' own RandAugment, slow on JAX; the recipe chains it"
)
# The checks of the recipes' arguments and image sizes run in Python, before
# any op.
ARGUMENT_CHECK = pytest.mark.backend_independent(
    reason="argument and size checks in Python, before any op"
)


@pytest.mark.slow
def test_cifar_recipe_is_a_zero_padded_crop_and_a_mirror_per_image():
    images = distinct_images(48, 8)
    augment = augmentation.cifar_augmentation(8, padding=2, seed=1)
    outputs = to_numpy(augment(images, training=True))
    assert outputs.shape == images.shape
    found = [
        find_shift(image, out, 2) for image, out in zip(images, outputs, strict=True)
    ]
    assert None not in found, "an output is not a shifted crop of its image"
    shifts = {(dy, dx) for dy, dx, _ in found}
    assert shifts <= set(itertools.product(range(-2, 3), repeat=2))
    assert len(shifts) > 8  # per image, not one shift per batch
    assert {m for *_, m in found} == {False, True}
    np.testing.assert_array_equal(to_numpy(augment(images, training=False)), images)
    # Without mirrors (digits): shifts only.
    plain = augmentation.cifar_augmentation(8, padding=2, mirror=False, seed=1)
    outputs = to_numpy(plain(images, training=True))
    found = [
        find_shift(image, out, 2) for image, out in zip(images, outputs, strict=True)
    ]
    assert None not in found and {m for *_, m in found} == {False}


@pytest.mark.slow
def test_crop_flip_reaches_every_position_and_is_the_centre_crop_at_inference():
    images = distinct_images(64, 18)
    augment = augmentation.crop_flip_augmentation(16, seed=2)  # from 18
    outputs = to_numpy(augment(images, training=True))
    assert outputs.shape == (64, 16, 16, 3)
    found = [find_crop(image, out) for image, out in zip(images, outputs, strict=True)]
    assert None not in found
    assert {(top, left) for top, left, _ in found} == set(
        itertools.product(range(3), repeat=2)
    )
    centre = keras.layers.CenterCrop(16, 16)(images)
    np.testing.assert_array_equal(
        to_numpy(augment(images, training=False)), to_numpy(centre)
    )


@pytest.mark.slow
def test_alexnet_recipe_adds_one_colour_offset_per_crop():
    images = distinct_images(8, 18)
    augment = augmentation.alexnet_augmentation(16, seed=3)
    outputs = to_numpy(augment(images, training=True))
    colour = augment.layers[-1]
    assert isinstance(colour, PCAColorAugmentation)
    for image, out in zip(images, outputs, strict=True):
        # Find the crop from the per-pixel differences being one RGB offset.
        hits = []
        for top, left in itertools.product(range(3), repeat=2):
            patch = image[top : top + 16, left : left + 16]
            for mirrored in (False, True):
                delta = out - (patch[:, ::-1] if mirrored else patch)
                offset = delta.reshape(-1, 3)
                if np.allclose(offset, offset[0], atol=1e-5):
                    hits.append(offset[0])
        assert len(hits) == 1, "not exactly one crop plus a colour offset"
        assert np.abs(hits[0]).max() > 0  # the colour changed
    # The colour step is the ImageNet one unless a layer is given.
    np.testing.assert_allclose(
        colour.get_config()["eigenvalues"], PCAColorAugmentation.IMAGENET_EIGENVALUES
    )
    adapted = PCAColorAugmentation(seed=0)
    adapted.adapt(images)
    assert augmentation.alexnet_augmentation(16, color=adapted).layers[-1] is adapted


@pytest.mark.slow
@RAND_AUGMENT_ON_TENSORFLOW
def test_efficientnet_recipe_crops_in_training():
    images = distinct_images(4, 18)
    augment = augmentation.efficientnet_augmentation(16, seed=4)
    assert to_numpy(augment(images, training=True)).shape == (4, 16, 16, 3)


def test_efficientnet_recipe_is_the_centre_crop_at_inference():
    images = distinct_images(4, 18)
    augment = augmentation.efficientnet_augmentation(16, seed=4)
    np.testing.assert_array_equal(
        to_numpy(augment(images, training=False)),
        to_numpy(keras.layers.CenterCrop(16, 16)(images)),
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe, size",
    [
        (lambda: augmentation.cifar_augmentation(8, padding=2, seed=5), 8),
        (lambda: augmentation.alexnet_augmentation(8, seed=5), 9),
        pytest.param(
            lambda: augmentation.efficientnet_augmentation(8, seed=5),
            9,
            marks=RAND_AUGMENT_ON_TENSORFLOW,
        ),
    ],
)
def test_recipes_run_in_tf_data_on_every_backend(recipe, size):
    images = distinct_images(8, size)
    augment = recipe()
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(4)
    outputs = np.concatenate(
        [batch.numpy() for batch in dataset.map(lambda x: augment(x, training=True))]
    )
    assert outputs.shape == (8, 8, 8, 3)
    assert np.isfinite(outputs).all()
    centre = to_numpy(augment(images, training=False))
    assert not np.allclose(outputs, centre)


@pytest.mark.slow
def test_seeded_recipes_repeat_and_seeds_differ():
    images = distinct_images(16, 18)

    def run(seed):
        return to_numpy(
            augmentation.alexnet_augmentation(16, seed=seed)(images, training=True)
        )

    np.testing.assert_array_equal(run(7), run(7))
    assert not np.allclose(run(7), run(8))


@pytest.mark.slow
def test_recipe_inside_a_model_trains():
    images = distinct_images(8, 18)
    labels = np.arange(8) % 2
    inputs = keras.Input((18, 18, 3))
    x = augmentation.crop_flip_augmentation(16, seed=0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    model.compile("sgd", "sparse_categorical_crossentropy")
    history = model.fit(images, labels, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(images, verbose=0).shape == (8, 2)


@pytest.mark.slow
def test_channels_first():
    images = distinct_images(6, 18)
    augment = augmentation.crop_flip_augmentation(
        16, seed=6, data_format="channels_first"
    )
    outputs = to_numpy(augment(images.transpose(0, 3, 1, 2), training=True))
    assert outputs.shape == (6, 3, 16, 16)
    for image, out in zip(images, outputs.transpose(0, 2, 3, 1), strict=True):
        assert find_crop(image, out) is not None


@pytest.mark.backend_independent(reason="integer arithmetic in Python")
def test_source_size_is_256_over_224():
    assert augmentation.source_size(224) == 256
    assert augmentation.source_size(16) == 18
    assert augmentation.source_size(32) == 37


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: augmentation.cifar_augmentation(0), "argument `image_size`"),
        (lambda: augmentation.cifar_augmentation(32, padding=-1), "argument `padding`"),
        (lambda: augmentation.cifar_augmentation(32, mirror=1), "argument `mirror`"),
        (lambda: augmentation.crop_flip_augmentation(16, 15), "argument `source_size`"),
        (lambda: augmentation.crop_flip_augmentation(16, seed=-1), "argument `seed`"),
        (
            lambda: augmentation.alexnet_augmentation(16, color="pca"),
            "argument `color`",
        ),
        (
            lambda: augmentation.efficientnet_augmentation(16, num_ops=0),
            "argument `num_ops`",
        ),
        (
            lambda: augmentation.efficientnet_augmentation(16, factor=2.0),
            "argument `factor`",
        ),
        (
            lambda: augmentation.crop_flip_augmentation(16, data_format="nhwc"),
            "argument `data_format`",
        ),
        (
            lambda: augmentation.efficientnet_augmentation(16, value_range=(1, 0)),
            "argument `value_range`",
        ),
    ],
)
@ARGUMENT_CHECK
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=f"Invalid value for {message}"):
        call()


@ARGUMENT_CHECK
def test_a_recipe_refuses_images_of_another_size():
    augment = augmentation.crop_flip_augmentation(16, seed=0)  # takes 18x18
    for shape in ((2, 16, 16, 3), (2, 40, 40, 3)):
        with pytest.raises(ValueError, match="it takes 18x18 images"):
            augment(np.zeros(shape, "float32"), training=True)
    with pytest.raises(ValueError, match="it takes 8x8 images"):
        augmentation.cifar_augmentation(8)(np.zeros((2, 10, 10, 3)), training=False)
    first = augmentation.cifar_augmentation(8, data_format="channels_first")
    assert tuple(first(np.zeros((2, 3, 8, 8)), training=False).shape) == (2, 3, 8, 8)
    with pytest.raises(ValueError, match="it takes 8x8 images"):
        first(np.zeros((2, 8, 8, 3)), training=False)  # channels last, wrongly
    # Symbolic inputs too: at model-building time.
    with pytest.raises(ValueError, match="it takes 18x18 images"):
        augment(keras.Input((20, 20, 3)))


@pytest.mark.parametrize(
    "recipe, shape",
    [
        (lambda: augmentation.cifar_augmentation(8, seed=0), (2, 8, 8, 3)),
        (lambda: augmentation.crop_flip_augmentation(8, seed=0), (2, 9, 9, 3)),
        (lambda: augmentation.alexnet_augmentation(8, seed=0), (2, 9, 9, 3)),
        (
            lambda: augmentation.crop_flip_augmentation(
                8, seed=0, data_format="channels_first"
            ),
            (2, 3, 9, 9),
        ),
    ],
)
def test_compute_output_shape_is_the_layers_in_order(recipe, shape):
    augment = recipe()
    expected = shape
    for layer in augment.layers:
        expected = layer.compute_output_shape(expected)
    assert augment.compute_output_shape(shape) == expected
    assert augment.compute_output_shape((None, *shape[1:])) == (None, *expected[1:])
    images = np.zeros(shape, "float32")
    for training in (True, False):
        assert tuple(augment(images, training=training).shape) == expected
    # Images of another size: the error of a call, at model-building time.
    height = 1 if augment.data_format == "channels_last" else 2
    wrong = (*shape[:height], shape[height] + 1, *shape[height + 1 :])
    size = shape[height + 1]
    with pytest.raises(ValueError, match=f"it takes {size}x{size} images"):
        augment.compute_output_shape(wrong)


@pytest.mark.slow
def test_a_model_with_a_recipe_saves_and_loads(tmp_path):
    images = distinct_images(4, 18)
    colour = PCAColorAugmentation(seed=0)
    colour.adapt(images)
    inputs = keras.Input((18, 18, 3))
    augment = augmentation.alexnet_augmentation(16, color=colour, seed=0)
    model = keras.Model(inputs, augment(inputs))
    model.save(tmp_path / "recipe.keras")
    loaded = keras.saving.load_model(tmp_path / "recipe.keras", safe_mode=True)
    pipeline = loaded.layers[-1]
    assert isinstance(pipeline, augmentation.AugmentationPipeline)
    assert (pipeline.image_size, pipeline.name) == (18, "alexnet_augmentation")
    assert [type(layer) for layer in pipeline.layers] == [
        type(layer) for layer in augment.layers
    ]
    np.testing.assert_array_equal(
        to_numpy(loaded.predict(images, verbose=0)),
        to_numpy(keras.layers.CenterCrop(16, 16)(images)),
    )


@pytest.mark.slow
@RAND_AUGMENT_ON_TENSORFLOW
def test_efficientnet_recipe_keeps_the_value_range():
    images = distinct_images(4, 18) * 255.0
    augment = augmentation.efficientnet_augmentation(16, value_range=(0, 255), seed=1)
    outputs = to_numpy(augment(images, training=True))
    assert outputs.max() > 2.0 and outputs.max() <= 255.0
    # A reversed range is refused: test_bad_arguments.


@ARGUMENT_CHECK
def test_the_colour_layer_must_share_the_recipes_data_format():
    colour = PCAColorAugmentation.imagenet(data_format="channels_last")
    with pytest.raises(ValueError, match="Expected a layer with data_format"):
        augmentation.alexnet_augmentation(
            16, color=colour, data_format="channels_first"
        )
