import re

import keras
import numpy as np
import pytest

from keras_blocks.layers import PCAColorAugmentation
from tests.layers.layer_checks import ARGUMENT_CHECKS, check_layer, to_numpy

try:
    import tensorflow as tf
except ImportError:  # The GPU checks' machine has no TensorFlow.
    tf = None
needs_tf_data = pytest.mark.skipif(tf is None, reason="needs TensorFlow's tf.data")

IMAGENET = {
    "eigenvalues": PCAColorAugmentation.IMAGENET_EIGENVALUES,
    "eigenvectors": PCAColorAugmentation.IMAGENET_EIGENVECTORS,
}
VALUES = np.array(PCAColorAugmentation.IMAGENET_EIGENVALUES)
VECTORS = np.array(PCAColorAugmentation.IMAGENET_EIGENVECTORS)  # (rgb, component)


def images(shape=(8, 5, 6, 3), seed=0):
    return np.random.default_rng(seed).uniform(size=shape).astype("float32")


def per_image_offsets(y, x, data_format="channels_last"):
    """(batch, 3): the RGB offset of each image, after checking that every
    pixel of the image got the same one."""
    offset = np.asarray(y, "float64") - np.asarray(x, "float64")
    if data_format == "channels_first":
        offset = offset.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(offset, offset[:, :1, :1, :] + 0 * offset, atol=1e-6)
    return offset[:, 0, 0, :]


def adapted_statistics(layer):
    return (
        to_numpy(layer.adapted_eigenvalues).astype("float64"),
        to_numpy(layer.adapted_eigenvectors).astype("float64"),
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({**IMAGENET, "seed": 1}, (2, 5, 5, 3)),
        ({**IMAGENET, "alpha_std": 0.5, "data_format": "channels_first"}, (2, 3, 4, 5)),
    ],
)
def test_layer_checks(kwargs, shape, tmp_path):
    check_layer(PCAColorAugmentation, kwargs, shape, tmp_path)


# The offset: one per image, eigenvectors @ (alpha * eigenvalues).


def test_offset_is_the_papers_formula_with_alpha_drawn_by_keras_random():
    """alpha, drawn again by `keras.random.normal` from a generator with the
    layer's seed, gives every image's offset exactly."""
    x = images()
    layer = PCAColorAugmentation(**IMAGENET, alpha_std=0.3, seed=7)
    offsets = per_image_offsets(to_numpy(layer(x, training=True)), x)
    alpha = to_numpy(
        keras.random.normal((8, 3), stddev=0.3, seed=keras.random.SeedGenerator(7))
    ).astype("float64")
    expected = (VECTORS @ (alpha * VALUES).T).T  # column i of VECTORS is p_i
    np.testing.assert_allclose(offsets, expected, rtol=1e-5, atol=1e-7)
    assert np.abs(offsets).min() > 0
    assert len({tuple(row) for row in offsets.round(7)}) == 8  # one draw per image


def test_alpha_solved_from_the_offsets_is_normal_with_alpha_std():
    """Solving offset = V (alpha * eigenvalues) for alpha over 4000 one-pixel
    images: mean 0, standard deviation alpha_std, independent components."""
    x = np.zeros((4000, 1, 1, 3), "float32")
    layer = PCAColorAugmentation(**IMAGENET, alpha_std=0.1, seed=3)
    offsets = per_image_offsets(to_numpy(layer(x, training=True)), x)
    alpha = np.linalg.solve(VECTORS, offsets.T).T / VALUES  # (4000, 3)
    np.testing.assert_allclose(alpha.mean(axis=0), 0, atol=0.01)  # 6 sigma
    np.testing.assert_allclose(alpha.std(axis=0), 0.1, rtol=0.05)  # 4 sigma
    correlation = np.corrcoef(alpha.T)
    np.testing.assert_allclose(correlation, np.eye(3), atol=0.1)


def test_channels_first_and_single_images_get_the_same_offsets():
    x = images((4, 5, 6, 3))
    last = to_numpy(PCAColorAugmentation(**IMAGENET, seed=2)(x, training=True))
    first_layer = PCAColorAugmentation(**IMAGENET, seed=2, data_format="channels_first")
    first = to_numpy(first_layer(x.transpose(0, 3, 1, 2), training=True))
    np.testing.assert_allclose(first.transpose(0, 2, 3, 1), last, atol=1e-6)
    single = to_numpy(PCAColorAugmentation(**IMAGENET, seed=2)(x[0], training=True))
    np.testing.assert_allclose(single, last[0], atol=1e-6)


def test_identity_at_inference_and_with_alpha_std_zero():
    x = images()
    layer = PCAColorAugmentation(**IMAGENET, seed=0)
    np.testing.assert_array_equal(to_numpy(layer(x)), x)
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), x)
    model = keras.Sequential([keras.Input((5, 6, 3)), layer])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    still = PCAColorAugmentation(**IMAGENET, alpha_std=0.0)
    np.testing.assert_array_equal(to_numpy(still(x, training=True)), x)


def test_seeded_layers_agree_and_each_call_draws_anew():
    x = images()
    a, b = (PCAColorAugmentation(**IMAGENET, seed=11) for _ in range(2))
    first = to_numpy(a(x, training=True))
    np.testing.assert_array_equal(first, to_numpy(b(x, training=True)))
    second = to_numpy(a(x, training=True))
    assert np.abs(per_image_offsets(second, x) - per_image_offsets(first, x)).min() > 0
    other = to_numpy(PCAColorAugmentation(**IMAGENET, seed=12)(x, training=True))
    assert not np.allclose(other, first)


def test_labels_and_masks_pass_through_a_dictionary():
    x = images((2, 4, 4, 3))
    labels = np.array([[1.0], [2.0]], "float32")
    masks = np.ones((2, 4, 4, 1), "float32")
    layer = PCAColorAugmentation(**IMAGENET, seed=0)
    out = layer(
        {"images": x, "labels": labels, "segmentation_masks": masks}, training=True
    )
    per_image_offsets(to_numpy(out["images"]), x)
    assert not np.allclose(to_numpy(out["images"]), x)
    np.testing.assert_array_equal(to_numpy(out["labels"]), labels)
    np.testing.assert_array_equal(to_numpy(out["segmentation_masks"]), masks)


def test_dtypes():
    """As Keras' image preprocessing layers: the policy's compute dtype."""
    x = images((2, 4, 4, 3))
    layer = PCAColorAugmentation(**IMAGENET, seed=0)
    y = layer((x * 255).astype("uint8"))
    assert keras.backend.standardize_dtype(y.dtype) == "float32"
    half = PCAColorAugmentation(**IMAGENET, seed=0, dtype="mixed_float16")
    y = half(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    full = to_numpy(PCAColorAugmentation(**IMAGENET, seed=0)(x, training=True))
    np.testing.assert_allclose(to_numpy(keras.ops.cast(y, "float32")), full, atol=1e-3)


def test_imagenet_preset():
    layer = PCAColorAugmentation.imagenet(seed=4, alpha_std=0.2)
    assert layer.eigenvalues == (0.2175, 0.0188, 0.0045)
    assert layer.eigenvectors == (
        (-0.5675, 0.7192, 0.4009),
        (-0.5808, -0.0045, -0.8140),
        (-0.5836, -0.6948, 0.4203),
    )
    assert (layer.alpha_std, layer.seed) == (0.2, 4)
    scaled = PCAColorAugmentation.imagenet(255.0)
    np.testing.assert_allclose(scaled.eigenvalues, [55.4625, 4.794, 1.14750])
    assert scaled.eigenvectors == layer.eigenvectors


# adapt: the covariance's eigenvalues and eigenvectors.


@pytest.fixture(scope="module")
def sample_images():
    """scikit-learn's two sample photographs (china.jpg, flower.jpg, 427x640),
    in [0, 1], and NumPy's eigen-decomposition of their RGB covariance."""
    datasets = pytest.importorskip("sklearn.datasets")
    x = np.stack(datasets.load_sample_images().images).astype("float32") / 255
    return x, numpy_reference(x), numpy_reference(x[:1])


def numpy_reference(x):
    covariance = np.cov(x.reshape(-1, 3).astype("float64"), rowvar=False)
    values, vectors = np.linalg.eigh(covariance)  # ascending
    return values[::-1], vectors[:, ::-1]


def assert_same_statistics(layer, reference):
    values, vectors = adapted_statistics(layer)
    np.testing.assert_allclose(values, reference[0], rtol=5e-7)
    # Eigenvectors up to sign: each column matches the reference's or its negative.
    signs = np.sign(np.sum(vectors * reference[1], axis=0))
    np.testing.assert_allclose(vectors * signs, reference[1], atol=1e-5)


def image_sources(x, data_format):
    if data_format == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    sources = {
        "array": x,
        "tensor": keras.ops.convert_to_tensor(x),
        "generator": (x[i : i + 1] for i in range(len(x))),
        "single images": list(x),
    }
    if tf is not None:
        sources["dataset"] = tf.data.Dataset.from_tensor_slices(x).batch(1)
        sources["labelled dataset"] = tf.data.Dataset.from_tensor_slices(
            (x, [0, 1])
        ).batch(2)
    return sources


@pytest.mark.slow
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_adapt_matches_numpy_on_real_images(sample_images, data_format):
    x, reference, _ = sample_images
    assert reference[0][0] > 10 * reference[0][2] > 0  # real colour structure
    for source, data in image_sources(x, data_format).items():
        layer = PCAColorAugmentation(data_format=data_format)
        layer.adapt(data)
        try:
            assert_same_statistics(layer, reference)
        except AssertionError as error:
            raise AssertionError(f"adapted on a {source}") from error


@needs_tf_data
def test_adapt_reads_steps_batches_of_an_endless_dataset(sample_images):
    x, _, first_image = sample_images
    layer = PCAColorAugmentation()
    layer.adapt(tf.data.Dataset.from_tensor_slices(x).batch(1).repeat(), steps=1)
    assert_same_statistics(layer, first_image)


def test_adapt_is_exact_for_an_offset_colour():
    """The running sums are taken around the first batch's mean: images far
    from zero (1e6 added) give the same covariance. Plain sums of squares
    (about 4e14 here) would lose the smallest eigenvalue (7e-4) to rounding."""
    x = images((6, 8, 8, 3)).astype("float64")
    x[..., 1] = 0.5 * x[..., 0] + 0.1 * x[..., 1]  # correlated channels
    reference = numpy_reference(x)
    layer = PCAColorAugmentation()
    layer.adapt(x + 1e6)
    values, _ = adapted_statistics(layer)
    np.testing.assert_allclose(values, reference[0], rtol=1e-4)


def test_adapted_layer_augments_with_its_statistics():
    x = images()
    layer = PCAColorAugmentation(alpha_std=0.5, seed=5)
    layer.adapt(x)
    values, vectors = adapted_statistics(layer)
    offsets = per_image_offsets(to_numpy(layer(x, training=True)), x)
    alpha = to_numpy(
        keras.random.normal((8, 3), stddev=0.5, seed=keras.random.SeedGenerator(5))
    )
    np.testing.assert_allclose(offsets, (alpha * values) @ vectors.T, atol=1e-6)


def test_not_adapted_raises_in_training_only():
    x = images((2, 4, 4, 3))
    layer = PCAColorAugmentation(seed=0, name="pca")
    np.testing.assert_array_equal(to_numpy(layer(x)), x)
    message = (
        "Layer 'pca' (PCAColorAugmentation) has no colour statistics: call "
        "`adapt(images)` on the training images before calling it in training"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer(x, training=True)
    if tf is not None:
        dataset = tf.data.Dataset.from_tensor_slices(x).batch(2)
        with pytest.raises(ValueError, match=re.escape(message)):
            dataset.map(lambda batch: layer(batch, training=True))
    layer.adapt(x)
    assert not np.allclose(to_numpy(layer(x, training=True)), x)


def test_set_weights_gives_a_fresh_layer_statistics():
    x = images()
    adapted = PCAColorAugmentation(seed=9)
    adapted.adapt(x)
    fresh = PCAColorAugmentation(seed=9)
    fresh.build(x.shape)
    fresh.set_weights(adapted.get_weights())
    np.testing.assert_allclose(
        to_numpy(fresh(x, training=True)), to_numpy(adapted(x, training=True))
    )


def test_keras_file_keeps_adapted_statistics(tmp_path):
    x = images()
    layer = PCAColorAugmentation(seed=6, data_format="channels_first")
    layer.adapt(x.transpose(0, 3, 1, 2))
    inputs = keras.Input((3, 5, 6))
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "pca.keras")
    loaded = keras.saving.load_model(tmp_path / "pca.keras", safe_mode=True)
    restored = loaded.layers[-1]
    assert type(restored) is PCAColorAugmentation
    assert restored.get_config() == layer.get_config()
    for a, b in zip(
        adapted_statistics(restored), adapted_statistics(layer), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    # Same statistics and generator state: the same augmentation.
    nchw = x.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(
        to_numpy(loaded(nchw, training=True)), to_numpy(model(nchw, training=True))
    )


# In a tf.data pipeline and in a model, on every backend.


@needs_tf_data
@pytest.mark.parametrize("adapted", [False, True])
def test_tf_data_map(adapted):
    x = images()

    def make():
        if not adapted:
            return PCAColorAugmentation.imagenet(seed=1)
        layer = PCAColorAugmentation(seed=1)
        layer.adapt(x)
        return layer

    def augmented(layer, training=True):
        dataset = tf.data.Dataset.from_tensor_slices(x).batch(4)
        dataset = dataset.map(lambda batch: layer(batch, training=training))
        return np.concatenate([batch.numpy() for batch in dataset])

    layer = make()
    first, second = augmented(layer), augmented(layer)
    offsets = per_image_offsets(first, x)
    assert np.abs(offsets).min() > 0
    assert len({tuple(row) for row in offsets.round(7)}) == 8
    # Each pass over the dataset draws anew; a fresh layer with the seed repeats.
    assert np.abs(per_image_offsets(second, x) - offsets).min() > 0
    np.testing.assert_array_equal(augmented(make()), first)
    np.testing.assert_array_equal(augmented(layer, training=False), x)


@pytest.mark.slow
@needs_tf_data
def test_pipeline_with_keras_flip_and_crop_in_tf_data():
    """Keras' flip and crop with the same seeds, with and without the colour
    step: the two differ by one RGB offset per image."""
    x = images((8, 8, 8, 3))

    def pipeline(color):
        flip_crop = [
            keras.layers.RandomFlip(seed=1),
            keras.layers.RandomCrop(6, 6, seed=2),
        ]
        return keras.layers.Pipeline(flip_crop + color)

    def run(layers):
        dataset = tf.data.Dataset.from_tensor_slices(x).batch(4).map(layers)
        return np.concatenate([batch.numpy() for batch in dataset])

    plain = run(pipeline([]))
    colored = run(pipeline([PCAColorAugmentation.imagenet(seed=3)]))
    assert colored.shape == plain.shape == (8, 6, 6, 3)
    assert np.abs(per_image_offsets(colored, plain)).min() > 0


@pytest.mark.slow
def test_trains_inside_a_sequential_model_with_keras_flip_and_crop():
    x = images((8, 8, 8, 3))
    color = PCAColorAugmentation(seed=0)
    color.adapt(x)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.RandomFlip(seed=1),
            keras.layers.RandomCrop(6, 6, seed=2),
            color,
            keras.layers.Conv2D(2, 3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.SGD(0.01), loss="mse")
    state = to_numpy(color.generator.state).copy()
    history = model.fit(x, np.ones((8, 1)), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # The colour step drew its alphas during the training step.
    assert not np.array_equal(to_numpy(color.generator.state), state)


# Errors.


@ARGUMENT_CHECKS
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"alpha_std": -0.1},
            "Invalid value for argument `alpha_std`. Expected a non-negative "
            "finite number. Received: alpha_std=-0.1",
        ),
        (
            {"eigenvalues": (1.0, 2.0), "eigenvectors": IMAGENET["eigenvectors"]},
            "Invalid value for argument `eigenvalues`. Expected 3 non-negative "
            "finite numbers (None to adapt the layer, with eigenvectors=None). "
            "Received: eigenvalues=(1.0, 2.0)",
        ),
        (
            {"eigenvalues": (1.0, -2.0, 0.0), "eigenvectors": IMAGENET["eigenvectors"]},
            "Invalid value for argument `eigenvalues`. Expected 3 non-negative "
            "finite numbers (None to adapt the layer, with eigenvectors=None). "
            "Received: eigenvalues=(1.0, -2.0, 0.0)",
        ),
        (
            {"eigenvectors": IMAGENET["eigenvectors"]},
            "Invalid value for argument `eigenvalues`. Expected 3 non-negative "
            "finite numbers (None to adapt the layer, with eigenvectors=None). "
            "Received: eigenvalues=None",
        ),
        (
            {"eigenvalues": IMAGENET["eigenvalues"], "eigenvectors": np.eye(2)},
            "Invalid value for argument `eigenvectors`. Expected a 3x3 matrix of "
            "finite numbers, one eigenvector per column (None to adapt the layer, "
            "with eigenvalues=None). Received: eigenvectors=array([[1., 0.],",
        ),
        (
            {"eigenvalues": IMAGENET["eigenvalues"]},
            "Invalid value for argument `eigenvectors`. Expected a 3x3 matrix of "
            "finite numbers, one eigenvector per column (None to adapt the layer, "
            "with eigenvalues=None). Received: eigenvectors=None",
        ),
        (
            {"seed": -1},
            "Invalid value for argument `seed`. Expected a non-negative integer. "
            "Received: seed=-1",
        ),
        (
            {"data_format": "NHWC"},
            "Invalid value for argument `data_format`. Expected one of "
            "('channels_last', 'channels_first'). Received: data_format='NHWC'",
        ),
    ],
)
def test_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        PCAColorAugmentation(**kwargs)


def test_bad_inputs_and_adapt_calls():
    layer = PCAColorAugmentation(**IMAGENET, name="pca")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Invalid input shape for layer 'pca' (PCAColorAugmentation). Expected "
            "RGB images with 3 channels: (height, width, 3), with or without a "
            "batch axis (channels_last). Received: input_shape=(2, 4, 4, 4)"
        ),
    ):
        layer(np.zeros((2, 4, 4, 4), "float32"))
    with pytest.raises(ValueError, match=re.escape("was given `eigenvalues`")):
        layer.adapt(images())
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Invalid value for argument `scale`. Expected a strictly positive "
            "finite number. Received: scale=0"
        ),
    ):
        PCAColorAugmentation.imagenet(0)
    fresh = PCAColorAugmentation(data_format="channels_first", name="pca")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`adapt` expects RGB images with 3 channels on axis -3 "
            "(channels_first), in batches or one at a time. Received: a batch of "
            "shape (2, 4, 4, 3)"
        ),
    ):
        fresh.adapt(images((2, 4, 4, 3)))
    with pytest.raises(ValueError, match=re.escape("holds 0 pixels")):
        fresh.adapt([])
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Invalid value for argument `steps`. Expected a strictly positive "
            "integer. Received: steps=0"
        ),
    ):
        fresh.adapt([], steps=0)
    with pytest.raises(ValueError, match=re.escape("Expected None for an array")):
        fresh.adapt(images((2, 3, 4, 4)), steps=1)


def test_an_adapted_layer_in_a_pipeline_saves_and_loads(tmp_path):
    # Loading builds the model (a symbolic call) before the adapted statistics
    # are read back: the layer must not ask for them then. Adapting after the
    # model is built (Keras' Normalization habit) works too.
    images = np.random.default_rng(0).uniform(size=(8, 6, 6, 3)).astype("float32")
    colour = PCAColorAugmentation(seed=0)
    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, keras.layers.Pipeline([colour])(inputs))
    colour.adapt(images)
    path = tmp_path / "pipeline.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    restored = loaded.layers[-1].layers[0]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored.adapted_eigenvalues),
        keras.ops.convert_to_numpy(colour.adapted_eigenvalues),
    )
    assert not np.allclose(
        keras.ops.convert_to_numpy(loaded.layers[-1](images, training=True)), images
    )
    # Without statistics, an actual call in training still refuses.
    with pytest.raises(ValueError, match="has no colour statistics"):
        PCAColorAugmentation()(images, training=True)
