"""Argument checks shared by every layer and callback.

Each check raises `ValueError` in Keras' wording, naming the argument and the
value received, and returns the value normalized to a plain Python type so that
`get_config()` stays JSON-serializable.
"""

import numbers

import keras

DATA_FORMATS = ("channels_last", "channels_first")


def _invalid(name, expected, value):
    return ValueError(
        f"Invalid value for argument `{name}`. Expected {expected}. "
        f"Received: {name}={value!r}"
    )


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(name, value, note=None):
    """`note`, where given, qualifies the message: what else is allowed where."""
    if not _is_int(value) or value <= 0:
        expected = "a strictly positive integer" + (f" ({note})" if note else "")
        raise _invalid(name, expected, value)
    return int(value)


def non_negative_int(name, value):
    if not _is_int(value) or value < 0:
        raise _invalid(name, "a non-negative integer", value)
    return int(value)


def size_pair(name, value, odd=False, note=None):
    """A height and width: an int or a tuple (or list) of 2 ints, as
    `keras.layers.Conv2D` takes a kernel size; returned as Conv2D stores it: a
    tuple of 2 ints. `odd=True` asks for odd sizes; `note` says when (for the
    message)."""
    pair = (value, value) if _is_int(value) else value
    if (
        not isinstance(pair, (tuple, list))
        or len(pair) != 2
        or not all(_is_int(v) and v > 0 and (v % 2 or not odd) for v in pair)
    ):
        kind = "strictly positive odd integer" if odd else "strictly positive integer"
        expected = f"a {kind} or a tuple of 2 {kind}s" + (f" {note}" if note else "")
        raise _invalid(name, expected, value)
    return tuple(int(v) for v in pair)


def equal_pair(name, value, note):
    """A size the same along height and width, for a layer that takes one:
    an int, or a tuple (or list) of 2 equal ints, as `keras.layers.Conv2D`
    takes strides; returned as the int, so that a config written with an int
    (before pairs were taken) and one written with a pair load alike. `note`
    says why the two must be equal (for the message)."""
    pair = (value, value) if _is_int(value) else value
    if (
        not isinstance(pair, (tuple, list))
        or len(pair) != 2
        or not all(_is_int(v) and v > 0 for v in pair)
        or pair[0] != pair[1]
    ):
        kind = "strictly positive integer"
        expected = f"a {kind} or a tuple of 2 equal {kind}s ({note})"
        raise _invalid(name, expected, value)
    return int(pair[0])


def positive_float(name, value):
    if not _is_real(value) or not value > 0 or value == float("inf"):
        raise _invalid(name, "a strictly positive finite number", value)
    return float(value)


def non_negative_float(name, value):
    if not _is_real(value) or not value >= 0 or value == float("inf"):
        raise _invalid(name, "a non-negative finite number", value)
    return float(value)


def rate(name, value):
    """A probability in [0, 1): a rate of 1 would drop everything."""
    if not _is_real(value) or not 0 <= value < 1:
        raise _invalid(name, "a number in the range [0, 1)", value)
    return float(value)


def probability(name, value):
    """A probability in [0, 1]."""
    if not _is_real(value) or not 0 <= value <= 1:
        raise _invalid(name, "a number in the range [0, 1]", value)
    return float(value)


def fraction(name, value):
    """A ratio in (0, 1], such as a squeeze ratio."""
    if not _is_real(value) or not 0 < value <= 1:
        raise _invalid(name, "a number in the range (0, 1]", value)
    return float(value)


def open_fraction(name, value):
    """A factor in (0, 1), such as a learning-rate reduction: 1 would change nothing."""
    if not _is_real(value) or not 0 < value < 1:
        raise _invalid(name, "a number in the range (0, 1)", value)
    return float(value)


def boolean(name, value):
    if not isinstance(value, bool):
        raise _invalid(name, "a boolean", value)
    return value


def one_of(name, value, options):
    if not isinstance(value, str) or value not in options:
        raise _invalid(name, f"one of {tuple(options)}", value)
    return value


def choice(name, value, options):
    """One of `options` of any type (a depth, a number of groups, None),
    compared by type and value, so that `True` is not `1`."""
    if not any(type(value) is type(option) and value == option for option in options):
        raise _invalid(name, f"one of {tuple(options)}", value)
    return value


def optional(check, name, value, *args):
    """Applies `check` unless `value` is None."""
    return None if value is None else check(name, value, *args)


def data_format(value):
    if value is None:
        return keras.config.image_data_format()
    return one_of("data_format", value, DATA_FORMATS)


def activation(name, value):
    """Resolves an activation name or callable; None means linear."""
    if value is None:
        return None
    try:
        return keras.activations.get(value)
    except (ValueError, TypeError) as error:
        raise _invalid(name, "an activation name or callable", value) from error


def serialize_activation(value):
    return None if value is None else keras.activations.serialize(value)


def initializer(name, value):
    try:
        return keras.initializers.get(value)
    except (ValueError, TypeError) as error:
        raise _invalid(name, "an initializer name, config or instance", value) from (
            error
        )


def regularizer(name, value):
    try:
        return keras.regularizers.get(value)
    except (ValueError, TypeError) as error:
        raise _invalid(name, "a regularizer name, config or instance", value) from (
            error
        )


def image_channels(layer, input_shape, data_format):
    """Checks a 4D image shape with known channels; returns the channels."""
    if len(input_shape) != 4:
        raise ValueError(
            f"Invalid input shape for layer '{layer.name}' "
            f"({layer.__class__.__name__}). Expected a 4D tensor "
            f"({_layout(data_format)}). Received: input_shape={input_shape}"
        )
    channels = input_shape[channel_axis(data_format)]
    if channels is None:
        raise ValueError(
            f"Invalid input shape for layer '{layer.name}' "
            f"({layer.__class__.__name__}). The channel dimension must be "
            f"known ({_layout(data_format)}). Received: input_shape={input_shape}"
        )
    return int(channels)


def image_input_spec(channels, data_format):
    """The `InputSpec` of 4D images of `channels` channels, which a layer
    sets in `build`: a later call on a tensor of another rank or channel
    count then fails with Keras' own clear message."""
    return keras.InputSpec(ndim=4, axes={channel_axis(data_format): channels})


def channel_axis(data_format):
    return -1 if data_format == "channels_last" else 1


def _layout(data_format):
    if data_format == "channels_last":
        return "batch, height, width, channels"
    return "batch, channels, height, width"
