"""What the commands of examples/ parse, without importing Keras.

Importing Keras (and with it TensorFlow, JAX or PyTorch) takes seconds, so
each command parses its arguments before it does: `--help` and a wrong
argument answer at once. This module holds what the parsers need and imports
nothing but the standard library: the help formatter, the argument types,
the reference models' names and the choices of options whose values live in
heavier modules (which take them from here).
"""

import argparse
import contextlib
import difflib
import math
import sys
from pathlib import Path

# The reference models by family module, with their smallest input size:
# what --model accepts and the help lists. The families' MODELS hold the
# builders; tests/workflows/test_examples.py checks that both name the same models.
FAMILY_MODELS = {
    "cifar_resnet": {
        "cifar_resnet20": 4,
        "cifar_resnet32": 4,
        "cifar_resnet44": 4,
        "cifar_resnet56": 4,
        "cifar_resnet110": 4,
    },
    "cifar10_cnn": {"cifar10_cnn": 8},
    "resnet": {
        **{f"resnet{depth}": 32 for depth in (18, 34, 50, 101, 152)},
        **{f"resnet{depth}v2": 32 for depth in (18, 34, 50, 101, 152)},
        **{f"se_resnet{depth}": 32 for depth in (18, 34, 50, 101, 152)},
        "resnext50_32x4d": 32,
        "resnext101_32x8d": 32,
    },
    "alexnet": {
        "alexnet": 67,
        "alexnet_ungrouped": 67,
        "alexnet_no_lrn": 67,
        "alexnet_torchvision": 63,
    },
    "vgg": {
        **{f"vgg{depth}": 32 for depth in (11, 13, 16, 19)},
        **{f"vgg{depth}_bn": 32 for depth in (11, 13, 16, 19)},
        "vgg11_lrn": 32,
        "vgg16_1x1": 32,
    },
    "googlenet": {
        "googlenet": 32,
        "googlenet_no_bn_lrn": 32,
        "googlenet_aux": 65,
        "googlenet_torchvision": 15,
    },
    "efficientnet": {f"efficientnet_b{index}": 32 for index in range(8)},
}
MODEL_NAMES = tuple(name for models in FAMILY_MODELS.values() for name in models)
DATASETS = ("digits", "cifar10")  # examples/datasets.py loads them
TTA_SCHEMES = ("ten_crop", "multi_crop")  # examples/_augment.py evaluates them
# --distribute: the engines of examples/_distribute.py, by backend.
DISTRIBUTE = {
    "tensorflow": ("mirrored", "multi_worker"),
    "jax": ("data_parallel",),
    "torch": ("ddp",),
}
DISTRIBUTE_CHOICES = tuple(choice for names in DISTRIBUTE.values() for choice in names)


class HelpFormatter(
    argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter
):
    """`--help` with the description as written and each option's default.

    An option whose default is None says in its help what None stands for; a
    flag's default (off) goes without saying.
    """

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class Refusal(SystemExit):
    """Bad input found after parsing (a --logdir, a data folder, a weights
    file), refused as argparse refuses a bad argument: exit status 2, and
    `PROG: error: MESSAGE` on stderr, which `refusing` prints. `str()` is
    the message."""

    def __init__(self, message):
        super().__init__(2)
        self.message = str(message)

    def __str__(self):
        return self.message


@contextlib.contextmanager
def refusing(prog):
    """Around a command's `main`: prints a `Refusal` as argparse's
    `parser.error` does, `prog: error: message`, and lets it end the process
    (exit status 2)."""
    try:
        yield
    except Refusal as refusal:
        print(f"{prog}: error: {refusal}", file=sys.stderr)
        raise


def positive_int(text):
    """argparse `type=`: an integer above 0, refused in the library's wording."""
    return _argument(text, int, lambda value: value > 0, "a strictly positive integer")


def non_negative_int(text):
    """argparse `type=`: an integer of at least 0."""
    return _argument(text, int, lambda value: value >= 0, "a non-negative integer")


def positive_float(text):
    """argparse `type=`: a finite number above 0 (not nan, not inf)."""
    return _argument(
        text,
        float,
        lambda value: 0 < value < math.inf,
        "a strictly positive finite number",
    )


def _argument(text, convert, valid, expected):
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not valid(value):
        # argparse prefixes the option: "argument --epochs: Expected ...".
        raise argparse.ArgumentTypeError(f"Expected {expected}. Received: {text}")
    return value


def model_name(name):
    """argparse `type=` for --model: a misspelled name gets the nearest ones."""
    if name in MODEL_NAMES:
        return name
    close = difflib.get_close_matches(name, MODEL_NAMES, n=3)
    hint = ""
    if close:
        *first, last = close
        hint = f"did you mean {', '.join(first) + ' or ' if first else ''}{last}? "
    raise argparse.ArgumentTypeError(
        f"invalid choice: {name!r} ({hint}--help lists the {len(MODEL_NAMES)} models)"
    )


def model_parser(description, sizes):
    """The command line of a family module (`python -m examples.resnet`):
    `sizes` maps its models' names, the first the default, to their smallest
    input size."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", choices=sorted(sizes), default=next(iter(sizes)))
    parser.add_argument(
        "--input-size", type=int, help="image height and width (default: native)"
    )
    parser.add_argument("--classes", type=int, help="default: the model's")
    # The family's smallest size (most of its models'), then the others'.
    smallest = max(sizes.values(), key=list(sizes.values()).count)
    others = "".join(
        f", {name}: {size}" for name, size in sizes.items() if size != smallest
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"build at the model's smallest size ({smallest}{others}) unless "
        "--input-size is given, and run one training step and one prediction "
        "on random images",
    )
    parser.add_argument("--no-summary", action="store_true")
    return parser


def family_parser(path, description):
    """`model_parser` of the family module at `path` (its `__file__`)."""
    return model_parser(description, FAMILY_MODELS[Path(path).stem])
