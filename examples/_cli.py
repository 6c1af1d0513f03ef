"""What the commands of examples/ parse, without importing Keras.

Importing Keras (and with it TensorFlow, JAX or PyTorch) takes seconds, so
each command parses its arguments before it does: `--help` and a wrong
argument answer at once (a --model name is checked against
`keras_blocks.models`' registry, which loads Keras). This module holds what
the parsers need and imports nothing but the standard library at its top:
the help formatter, the argument types and the choices of options whose
values live in heavier modules (which take them from here).
"""

import argparse
import contextlib
import difflib
import math
import sys

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


class DefaultModel(str):
    """A command's default --model: argparse passes a string default through
    `type=` (after parsing, before it reports an unknown option), which for
    `model_name` would load Keras; this one is taken as it is (the tests
    check that each default is a registered model)."""


def model_name(name):
    """argparse `type=` for --model: one of `keras_blocks.models.list_models()`;
    a misspelled name gets the nearest ones. Checking it loads Keras (the
    registry is the family modules'), so only a given --model pays for it."""
    if isinstance(name, DefaultModel):
        return str(name)
    from keras_blocks.models import list_models

    names = list_models()
    if name in names:
        return name
    close = difflib.get_close_matches(name, names, n=3)
    hint = ""
    if close:
        *first, last = close
        hint = f"did you mean {', '.join(first) + ' or ' if first else ''}{last}? "
    raise argparse.ArgumentTypeError(
        f"invalid choice: {name!r} ({hint}`python -m examples.models --list` "
        f"lists the {len(names)} models)"
    )
