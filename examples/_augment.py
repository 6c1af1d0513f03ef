"""`examples/train.py`'s --augment and --tta: the family's recipe from
`keras_blocks.augmentation`, and the test images its crops come from."""

import keras
import numpy as np

from examples import datasets
from examples._cli import TTA_SCHEMES
from examples.models import image_shape
from keras_blocks import augmentation
from keras_blocks.evaluation import crop_count, evaluate_with_tta
from keras_blocks.layers import PCAColorAugmentation
from keras_blocks.models import googlenet

# The family's --augment recipe; the other families crop and mirror.
RECIPES = {
    "alexnet": "alexnet",
    "cifar_resnet": "cifar",
    "cifar10_cnn": "cifar",
    "efficientnet": "efficientnet",
}
SCHEMES = TTA_SCHEMES


def recipe(family, augment):
    """The --augment recipe ("cifar", "alexnet", ...) of a model `family` (a
    module name of `keras_blocks.models`), or None without --augment."""
    return RECIPES.get(family, "crop_flip") if augment else None


def data_size(image_size, kind):
    """The size of the images to load: larger for the crop recipes."""
    if kind in (None, "cifar"):
        return image_size
    return augmentation.source_size(image_size)


def cifar_padding(image_size):
    """The CIFAR shift: 4 pixels at 32x32, in proportion at other sizes."""
    return max(1, round(augmentation.CIFAR_PADDING * image_size / 32))


def augmentation_layers(kind, image_size, dataset, x_train, seed):
    """The recipe's `keras.layers.Pipeline`, AlexNet's colour step adapted to
    the training images."""
    options = {"mirror": datasets.MIRROR_INVARIANT[dataset], "seed": seed}
    if kind == "cifar":
        return augmentation.cifar_augmentation(
            image_size, cifar_padding(image_size), **options
        )
    source = augmentation.source_size(image_size)
    if kind == "alexnet":
        color = PCAColorAugmentation(seed=seed + 3)
        color.adapt(x_train)  # the training images' RGB principal components
        return augmentation.alexnet_augmentation(
            image_size, source, color=color, **options
        )
    if kind == "efficientnet":
        return augmentation.efficientnet_augmentation(image_size, source, **options)
    return augmentation.crop_flip_augmentation(image_size, source, **options)


def with_augmentation(net, layers, size):
    """`net` behind the augmentation `layers`, taking `size` images."""
    inputs = keras.Input(image_shape(size))
    return keras.Model(inputs, net(layers(inputs)), name=net.name)


def tta_images(x_test, image_size, kind):
    """The images --tta crops: a crop recipe's larger ones, else the test
    images zero-padded as the CIFAR shift pads them (its corners are its
    extreme shifts)."""
    if data_size(image_size, kind) > image_size:  # loaded larger: crop recipes
        return x_test
    pad = cifar_padding(image_size)
    spatial = (1, 2) if keras.config.image_data_format() == "channels_last" else (2, 3)
    widths = [(pad, pad) if axis in spatial else (0, 0) for axis in range(4)]
    return np.pad(x_test, widths)


def evaluate_crops(net, x_test, y_test, scheme, image_size, kind, dataset):
    """Test accuracy with the softmax averaged over the crops of `scheme`."""
    mirror = datasets.MIRROR_INVARIANT[dataset]
    result = evaluate_with_tta(
        googlenet.inference_model(net),
        tta_images(x_test, image_size, kind),
        y_test,
        scheme,
        crop_size=image_size,
        batch_size=64,
        mirror=mirror,
    )
    return result.accuracy, crop_count(scheme, mirror=mirror)
