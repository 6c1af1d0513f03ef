"""ResNet-18/34/50/101/152 (v1 and v2), SE-ResNet and ResNeXt from one stage table.

A stem (7x7 convolution, 3x3 max pooling, both stride 2), four stages of
residual blocks whose first (v1) or last (keras.applications' v2) block halves
the resolution and doubles the width, then global average pooling and a dense
classifier. Depth picks the block and the repeats; the rest are flags.

References:
    He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
    He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016 (v2).
    Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018 (SE-ResNet).
    Xie et al., "Aggregated Residual Transformations for Deep Neural
    Networks", CVPR 2017 (ResNeXt).

Two configurations:
- the paper's (default): bias-free convolutions, each followed by BN, the
  stride in the 3x3 convolution ("v1.5", as torchvision); the trainable
  parameters are torchvision's.
- `layout="keras_applications"`: the layers, biases, paddings, initializers and
  weight order of `keras.applications.ResNet50/101/152` (v1: biases
  everywhere, stride in the first 1x1) and `ResNet50V2/101V2/152V2` (v2:
  stride in a stage's last block, subsampling shortcut, a final BN). Their
  ImageNet weights load with `set_weights` (see "Load ImageNet weights from
  keras.applications" below).

    python -m examples.models --model resnext50_32x4d --smoke

Load ImageNet weights from keras.applications (downloaded once) or
torchvision (a file), with the preprocessing they expect inside the model:

    from keras_blocks.models import get_model
    model = get_model("resnet50", weights="imagenet", include_preprocessing=True)
    model = get_model("resnet50", weights="resnet50-11ad3fa6.pth")
"""

import functools
import re

import keras

from keras_blocks import _validation as check
from keras_blocks import layers
from keras_blocks.models._common import classifier, image_input, renamed_layout
from keras_blocks.models._registry import register_family
from keras_blocks.models._weights import KerasApplicationsSource, WeightSource
from keras_blocks.models.backbones import PyramidSpec
from keras_blocks.porting import weight_layers

DEFAULT_SIZE = 224
MIN_SIZE = 32  # total stride 32
STAGE_FILTERS = (64, 128, 256, 512)  # a bottleneck block outputs 4x as many
STAGE_STRIDES = (1, 2, 2, 2)
# depth: (block, blocks per stage)  # trainable parameters, paper configuration
# (= torchvision); all parameters with layout="keras_applications", v1 and v2
DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),  # 11,689,512
    34: ("basic", (3, 4, 6, 3)),  # 21,797,672
    50: ("bottleneck", (3, 4, 6, 3)),  # 25,557,032; 25,636,712 and 25,613,800
    101: ("bottleneck", (3, 4, 23, 3)),  # 44,549,160; 44,707,176 and 44,675,560
    152: ("bottleneck", (3, 8, 36, 3)),  # 60,192,808; 60,419,944 and 60,380,648
}
KERAS_BN_EPSILON = 1.001e-5
LAYOUTS = ("paper", "keras_applications")


def ResNet(
    depth=50,
    *,
    preact=False,
    se_ratio=None,
    groups=1,
    base_width=64,
    layout: str = "paper",
    bn_synchronized: bool = False,
    include_top=True,
    classes=1000,
    input_shape=None,
    pooling=None,
    classifier_activation="softmax",
    name=None,
    keras_applications: bool | None = None,
):
    """A ResNet of `depth` 18, 34, 50, 101 or 152.

    `preact=True` gives ResNet v2 (pre-activation), `se_ratio=1 / 16` SE-ResNet,
    `groups=32, base_width=4` ResNeXt-50 (32x4d) (bottleneck depths only).

    Args:
        layout: str. `"paper"` (the default; torchvision's and timm's
            networks, whose weights load) or `"keras_applications"`
            (keras.applications' ResNet50/101/152 and their V2, whose weights
            load with `set_weights`).
        bn_synchronized: bool. Synchronized batch normalization over the
            replicas of a `tf.distribute` strategy (TensorFlow); see
            `keras_blocks.layers.ConvBNAct`.
        keras_applications: bool or None. Deprecated: `layout=`
            (`True` is `layout="keras_applications"`).
    """
    check.choice("depth", depth, DEPTHS)
    layout = renamed_layout("ResNet", "keras_applications", keras_applications, layout)
    check.one_of("layout", layout, LAYOUTS)
    keras_applications = layout == "keras_applications"
    check.boolean("bn_synchronized", bn_synchronized)
    block, repeats = DEPTHS[depth]
    if block == "basic" and (groups, base_width) != (1, 64):
        raise ValueError(
            "Invalid value for argument `groups`. Grouped (ResNeXt) blocks need "
            f"a bottleneck depth (50, 101, 152). Received: groups={groups}, "
            f"base_width={base_width}, depth={depth}"
        )
    if keras_applications and (block == "basic" or se_ratio or groups != 1):
        raise ValueError(
            "Invalid value for argument `layout`. keras.applications "
            "has plain ResNet50/101/152 and their V2 only. Received: "
            f"layout='keras_applications', depth={depth}, se_ratio={se_ratio}, "
            f"groups={groups}"
        )
    # keras.applications' layers: biased convolutions, its BN epsilon and
    # momentum, Keras' default initializer; the paper's: bias-free
    # convolutions before BN, PyTorch's BN, He initialization.
    options = {
        "bn_epsilon": KERAS_BN_EPSILON if keras_applications else 1e-5,
        "bn_momentum": 0.99 if keras_applications else 0.9,
        "kernel_initializer": "glorot_uniform" if keras_applications else "he_normal",
        "bn_synchronized": bn_synchronized,
    }
    inputs = image_input(input_shape, DEFAULT_SIZE, MIN_SIZE, "ResNet")

    # Stem: 7x7/2 convolution, then 3x3/2 max pooling.  # (h/4, w/4, 64)
    x = layers.ConvBNAct(
        64,
        7,
        strides=2,
        padding="symmetric",
        use_bias=keras_applications,
        # v2 normalizes at the start of each block instead.
        batch_norm=not preact,
        activation=None if preact else "relu",
        name="conv1",
        **options,
    )(inputs)
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    for stage, (filters, stride, count) in enumerate(
        zip(STAGE_FILTERS, STAGE_STRIDES, repeats, strict=True)
    ):
        for index in range(count):
            strides, shortcut = stride if index == 0 else 1, "auto"
            if preact and keras_applications:
                # keras.applications' v2 halves the resolution in the last
                # block of stages 2-4, with a subsampling shortcut.
                last = index == count - 1 and stage < len(STAGE_FILTERS) - 1
                strides = 2 if last else 1
                shortcut = "zero_pad" if last else "auto"
            kwargs = {
                "strides": strides,
                "preact": preact,
                "shortcut": shortcut,
                "se_ratio": se_ratio,
                "use_bias": True if keras_applications and not preact else None,
                "name": f"conv{stage + 2}_block{index + 1}",
                **options,
            }
            if block == "basic":
                x = layers.ResidualBlock(filters, **kwargs)(x)
            else:
                x = layers.BottleneckBlock(
                    filters,
                    groups=groups,
                    base_width=base_width,
                    # keras.applications' v1 strides in the first 1x1, as
                    # the paper; its v2 and torchvision in the 3x3 ("v1.5").
                    stride_in_1x1=keras_applications and not preact,
                    **kwargs,
                )(x)
    if preact:  # v2 ends with the BN and ReLU its last block left out
        x = keras.layers.BatchNormalization(
            axis=1 if keras.config.image_data_format() == "channels_first" else -1,
            epsilon=options["bn_epsilon"],
            momentum=options["bn_momentum"],
            # As the blocks' BN: Keras refuses the flag off TensorFlow.
            synchronized=bn_synchronized and keras.config.backend() == "tensorflow",
            name="post_bn",
        )(x)
        x = keras.layers.Activation("relu", name="post_relu")(x)
    outputs = classifier(x, include_top, classes, pooling, classifier_activation)
    name = name or _name(depth, preact, se_ratio, groups, base_width)
    return keras.Model(inputs, outputs, name=name)


def _name(depth, preact, se_ratio, groups, base_width):
    """resnet50, resnet50v2, se_resnet50, resnext50_32x4d (the MODELS keys)."""
    grouped = (groups, base_width) != (1, 64)
    net = f"resnext{depth}_{groups}x{base_width}d" if grouped else f"resnet{depth}"
    return f"{'se_' if se_ratio else ''}{net}{'v2' if preact else ''}"


MODELS = {
    **{f"resnet{d}": functools.partial(ResNet, d) for d in DEPTHS},
    **{f"resnet{d}v2": functools.partial(ResNet, d, preact=True) for d in DEPTHS},
    **{f"se_resnet{d}": functools.partial(ResNet, d, se_ratio=1 / 16) for d in DEPTHS},
    "resnext50_32x4d": functools.partial(ResNet, 50, groups=32, base_width=4),
    "resnext101_32x8d": functools.partial(ResNet, 101, groups=32, base_width=8),
}


# Pretrained weights: a block's layers -> its torchvision (and timm) modules.
# `conv{s}_block{b}` is `layer{s - 1}.{b - 1}`; the stem is `conv1`/`bn1`.
BLOCK_KEYS = {
    "conv1/conv": "conv1",
    "conv1/bn": "bn1",
    "conv2": "conv2",  # the basic block's second convolution...
    "bn2": "bn2",  # ... and its BN, which come before the addition
    "conv2/conv": "conv2",
    "conv2/bn": "bn2",
    "conv3": "conv3",
    "bn3": "bn3",
    "shortcut_conv": "downsample.0",
    "shortcut_bn": "downsample.1",
    "se/reduce": "se.fc1",  # timm's seresnet: SE after bn3, 1x1 convs with bias
    "se/expand": "se.fc2",
}
BLOCK = re.compile(r"conv(\d)_block(\d+)/(.+)")


def torchvision_mapping(model):
    """Keras layer path -> torchvision key prefix, for the paper configuration
    (torchvision's `resnet*`, `resnext*`; timm's `seresnet50` adds `se.fc1/2`)."""
    if any(layer.name == "post_bn" for layer in model.layers):
        raise ValueError("torchvision and timm publish no ResNet v2 (preact) weights.")
    mapping = {}
    for path, layer in weight_layers(model).items():
        if path in ("conv1/conv", "conv1/bn"):
            mapping[path] = "conv1" if path.endswith("conv") else "bn1"
        elif path == "predictions":
            mapping[path] = "fc"
        elif (match := BLOCK.fullmatch(path)) and match[3] in BLOCK_KEYS:
            stage, block, rest = int(match[1]), int(match[2]), match[3]
            mapping[path] = f"layer{stage - 1}.{block - 1}.{BLOCK_KEYS[rest]}"
        if path.endswith("conv") and getattr(layer, "use_bias", False):
            raise ValueError(
                f"The model's convolution {path} has a bias; the paper "
                "configuration (torchvision's) has none."
            )
    return mapping


_TORCHVISION_FILES = {
    # MODELS name: (the file torchvision downloads, its top-1, build options)
    "resnet18": ("resnet18-f37072fd.pth", 69.758, {}),
    "resnet34": ("resnet34-b627a593.pth", 73.314, {}),
    "resnet50": ("resnet50-11ad3fa6.pth", 80.858, {}),  # IMAGENET1K_V2
    "resnet101": ("resnet101-cd907fc2.pth", 81.886, {}),  # IMAGENET1K_V2
    "resnet152": ("resnet152-f82ba261.pth", 82.284, {}),  # IMAGENET1K_V2
    "resnext50_32x4d": ("resnext50_32x4d-1a0047aa.pth", 81.198, {}),  # V2
    "resnext101_32x8d": ("resnext101_32x8d-110c445d.pth", 82.834, {}),  # V2
}
LAYOUT = (
    "Build the paper configuration: ResNet(depth) with layout='paper' "
    "(the default) and preact=False."
)
WEIGHTS = {
    "torchvision": WeightSource(
        mapping=torchvision_mapping,
        bn_epsilon=1e-5,
        head=("fc.",),
        layout=LAYOUT,
        files=_TORCHVISION_FILES,
    ),
    "timm": WeightSource(
        mapping=torchvision_mapping,
        bn_epsilon=1e-5,
        head=("fc.",),
        layout=LAYOUT + " SE-ResNet: se_ratio=1 / 16.",
        files={
            # timm's "seresnet50.a1_in1k" (also on the Hugging Face hub as
            # timm/seresnet50.a1_in1k, model.safetensors); top-1 on its card.
            "se_resnet50": ("seresnet50_a1_0-ffa00869.pth", None, {}),
        },
        license="Apache-2.0 (timm)",
    ),
}
KERAS_APPLICATIONS = {"layout": "keras_applications"}
WEIGHTS["keras_applications"] = KerasApplicationsSource(
    applications={
        **{f"resnet{d}": f"ResNet{d}" for d in (50, 101, 152)},
        **{f"resnet{d}v2": f"ResNet{d}V2" for d in (50, 101, 152)},
    },
    files={
        # MODELS name: (the file keras.applications downloads, its top-1 as
        # keras.io's table gives it, build options)
        "resnet50": (
            "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
            74.9,
            KERAS_APPLICATIONS,
        ),
        "resnet101": (
            "resnet101_weights_tf_dim_ordering_tf_kernels.h5",
            76.4,
            KERAS_APPLICATIONS,
        ),
        "resnet152": (
            "resnet152_weights_tf_dim_ordering_tf_kernels.h5",
            76.6,
            KERAS_APPLICATIONS,
        ),
        "resnet50v2": (
            "resnet50v2_weights_tf_dim_ordering_tf_kernels.h5",
            76.0,
            KERAS_APPLICATIONS,
        ),
        "resnet101v2": (
            "resnet101v2_weights_tf_dim_ordering_tf_kernels.h5",
            77.2,
            KERAS_APPLICATIONS,
        ),
        "resnet152v2": (
            "resnet152v2_weights_tf_dim_ordering_tf_kernels.h5",
            78.0,
            KERAS_APPLICATIONS,
        ),
    },
    preprocessing={
        **{f"resnet{d}": "caffe" for d in (50, 101, 152)},
        **{f"resnet{d}v2": "tf" for d in (50, 101, 152)},
    },
    license="MIT (the ResNet authors' Caffe weights, as keras.applications)",
)


def preprocessing(options):
    """What the layout's weights take: keras.applications' v1 "caffe" and
    v2 "tf" modes, torchvision's and timm's ImageNet normalization."""
    if options.get("layout") != "keras_applications":
        return "torch"
    return "tf" if options.get("preact") else "caffe"


# The levels of `keras_blocks.models.backbone`: the last trunk layer at
# each stride.
PYRAMID = PyramidSpec(
    {
        "conv1": layers.ConvBNAct,
        "pool1_pool": keras.layers.MaxPooling2D,
        "conv2_block1": (layers.ResidualBlock, layers.BottleneckBlock),
    },
    r"conv1|pool1_pool|conv\d+_block\d+|post_relu",
)

register_family(
    __name__,
    MODELS,
    pyramid=PYRAMID,
    min_size=MIN_SIZE,
    default_size=DEFAULT_SIZE,
    layouts=LAYOUTS,
    weights=WEIGHTS,
    preprocessing=preprocessing,
)
