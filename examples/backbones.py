"""Every reference model as a backbone: its levels (stage outputs at strides
4 to 32) and their shapes.

`keras_blocks.models.backbone(model)` is the model from its input to those
maps, a dict keyed by level as keras-hub's `pyramid_outputs` names them:
`"P{k}"` is the output at stride `2 ** k` (P2 ... P5 at strides 4 ... 32).
The docs' "Backbones" page says which layer gives each level, family by
family.

    python -m examples.backbones --model resnet50   # the levels and shapes
"""

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python examples/backbones.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples._cli import DefaultModel, HelpFormatter, model_name


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=HelpFormatter
    )
    parser.add_argument("--model", type=model_name, default=DefaultModel("resnet50"))
    parser.add_argument(
        "--image-size", type=int, default=224, help="height and width of the input"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    # --help and a wrong argument answer before Keras loads (seconds).
    parse_args(None)

from examples.models import image_shape
from keras_blocks.models import backbone, get_model, pyramid_layers


def main(argv=None):
    args = parse_args(argv)
    model = get_model(args.model, input_shape=image_shape(args.image_size))
    features = backbone(model)
    for level, layer in pyramid_layers(model).items():
        shape = tuple(features.output[level].shape[1:])
        print(f"{level}  {layer:<16} {shape}")
    return features


if __name__ == "__main__":
    main()
