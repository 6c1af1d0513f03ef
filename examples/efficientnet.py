"""EfficientNet-B0 ... B7 through the library's compound-scaled builder.

The whole family is one stage table (`keras_blocks.efficientnet.B0_BLOCKS`),
scaled in depth, width and resolution by `compound_scaling(phi)`; the official
variants use the paper's rounded coefficients (`PRESETS`). See
`keras_blocks/efficientnet.py` for the table and the builder, and
`efficientnet.load_keras_applications_weights` for ImageNet weights.

Reference: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional
Neural Networks", ICML 2019.

The examples feed images in [0, 1], so the models here leave out the built-in
[0, 255] preprocessing (`include_preprocessing=False`); the library's builders
include it by default, as keras.applications does.

    python -m examples.efficientnet --model efficientnet_b3 --smoke
"""

import functools

from examples._common import model_main
from keras_blocks import efficientnet

MIN_SIZE = 32  # total stride 32
# variant: parameters (= keras.applications; with preprocessing: 7 more)
VARIANTS = {
    "b0": efficientnet.EfficientNetB0,  # 5,330,564
    "b1": efficientnet.EfficientNetB1,  # 7,856,232
    "b2": efficientnet.EfficientNetB2,  # 9,177,562
    "b3": efficientnet.EfficientNetB3,  # 12,320,528
    "b4": efficientnet.EfficientNetB4,  # 19,466,816
    "b5": efficientnet.EfficientNetB5,  # 30,562,520
    "b6": efficientnet.EfficientNetB6,  # 43,265,136
    "b7": efficientnet.EfficientNetB7,  # 66,658,680
}

# Named as their keys (the library's builders take keras.applications'
# names, "efficientnetb0").
MODELS = {
    f"efficientnet_{variant}": functools.partial(
        builder, include_preprocessing=False, name=f"efficientnet_{variant}"
    )
    for variant, builder in VARIANTS.items()
}


def main(argv=None):
    return model_main(MODELS, __doc__.split("\n")[0], MIN_SIZE, argv)


if __name__ == "__main__":
    main()
