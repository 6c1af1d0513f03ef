"""Drop-in CNN building blocks for Keras 3."""

from keras_blocks.layers.bottleneck_block import BottleneckBlock
from keras_blocks.layers.conv_bn_act import ConvBNAct
from keras_blocks.layers.drop_path import DropPath
from keras_blocks.layers.dropout import Dropout
from keras_blocks.layers.image_preprocessing import ImagePreprocessing
from keras_blocks.layers.inception_module import InceptionModule
from keras_blocks.layers.local_response_normalization import (
    LocalResponseNormalization,
)
from keras_blocks.layers.mb_conv_block import MBConvBlock
from keras_blocks.layers.normalization import Normalization
from keras_blocks.layers.pca_color_augmentation import PCAColorAugmentation
from keras_blocks.layers.residual_block import ResidualBlock
from keras_blocks.layers.squeeze_excite import SqueezeExcite

__all__ = [
    "BottleneckBlock",
    "ConvBNAct",
    "DropPath",
    "Dropout",
    "ImagePreprocessing",
    "InceptionModule",
    "LocalResponseNormalization",
    "MBConvBlock",
    "Normalization",
    "PCAColorAugmentation",
    "ResidualBlock",
    "SqueezeExcite",
]
