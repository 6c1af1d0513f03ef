"""The one registry of the reference models: every family module registers
its named configurations here when it is imported, and `list_models`,
`get_model`, the commands of examples/, the tools and the docs' tables read
them from here (timm's `_registry.py`, keras-hub's presets)."""

import dataclasses
import difflib
import fnmatch
import functools
import inspect
from collections.abc import Callable
from typing import Any

_ENTRIES = {}  # name -> ModelEntry, in registration order
_FAMILIES = {}  # family name -> Family


@dataclasses.dataclass(frozen=True)
class WeightFile:
    """One published file of weights for one model.

    Attributes:
        file: the file's name as its source publishes it (torchvision's
            `torch.hub` cache name, timm's, keras.applications').
        top1: its ImageNet top-1 accuracy in percent, as the source reports.
        options: the build options of the layout the file loads into
            (`{"layout": "torchvision"}`), passed to the builder.
        source: the source's name (`"torchvision"`, `"timm"`,
            `"keras_applications"`).

    Examples:
        >>> from keras_blocks.models import model_entry
        >>> file = model_entry("resnet18").weights["torchvision"]
        >>> file.file, file.top1, file.source
        ('resnet18-f37072fd.pth', 69.758, 'torchvision')
    """

    file: str
    top1: float
    options: dict
    source: str


@dataclasses.dataclass(frozen=True)
class Family:
    """A family module's part of the registry (see `register_family`).

    Examples:
        >>> from keras_blocks.models import families
        >>> resnet = families()["resnet"]
        >>> resnet.layouts, sorted(resnet.weights)
        (('paper', 'keras_applications'), ['keras_applications', 'timm', 'torchvision'])
    """

    name: str
    module: str
    models: dict
    layouts: tuple[str, ...]
    weights: dict
    pyramid: Any
    preprocessing: Callable[[dict], str]


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One named reference model.

    Attributes:
        name: its name (`"resnet50"`), as `list_models` lists it.
        family: its family module's name (`"resnet"`), a module of
            `keras_blocks.models`.
        builder: the builder with the configuration's options bound
            (`functools.partial(ResNet, 50)`); more options are passed on.
        min_size: the smallest input height and width it takes.
        default_size: its input height and width when `input_shape` is None
            (the paper's, or the weights').
        layouts: the values of its builder's `layout` (whose network it is
            laid out as: `"paper"`, `"keras_applications"`, `"torchvision"`).
        weights: source name -> `WeightFile`, the published files that load
            into it (converted on load).

    Examples:
        >>> from keras_blocks.models import model_entry
        >>> entry = model_entry("googlenet_torchvision")
        >>> entry.family, entry.min_size, entry.layouts
        ('googlenet', 15, ('paper', 'torchvision'))
    """

    name: str
    family: str
    builder: Callable[..., Any]
    min_size: int
    default_size: int
    layouts: tuple[str, ...]
    weights: dict[str, WeightFile]

    @property
    def parameters(self):
        """The builder's parameters (names), for checking options early;
        None where it takes any keyword (and checks them itself)."""
        parameters = inspect.signature(self.builder).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return None
        return tuple(parameters)


def register_family(
    module,
    models,
    *,
    min_size,
    default_size,
    layouts=("paper",),
    weights=None,
    min_sizes=None,
    default_sizes=None,
    pyramid=None,
    preprocessing=None,
):
    """Registers a family module's named configurations.

    Args:
        module: str. The family module's `__name__`.
        models: dict. Name -> builder (a function or `functools.partial`).
        min_size: int. The family's smallest input size.
        default_size: int. The family's default input size.
        layouts: tuple of str. The values of the builders' `layout`, the
            default first.
        weights: dict or None. Source name -> `WeightSource`.
        min_sizes, default_sizes: dict or None. Per model, where it differs
            from the family's.
        pyramid: the family's `backbones.PyramidSpec`, or None.
        preprocessing: callable or None. Build options -> the preprocessing
            mode of `keras_blocks.layers.ImagePreprocessing` that the layout's
            weights expect; None: `"torch"` (ImageNet's mean and standard
            deviation, as torchvision's and timm's weights).
    """
    family = module.rsplit(".", 1)[-1]
    weights = weights or {}
    _FAMILIES[family] = Family(
        name=family,
        module=module,
        models=models,
        layouts=tuple(layouts),
        weights=weights,
        pyramid=pyramid,
        preprocessing=preprocessing or (lambda options: "torch"),
    )
    for name, builder in models.items():
        if name in _ENTRIES:
            raise ValueError(f"Model {name!r} is registered twice.")
        files = {
            source_name: WeightFile(*source.files[name], source=source_name)
            for source_name, source in weights.items()
            if name in source.files
        }
        _ENTRIES[name] = ModelEntry(
            name=name,
            family=family,
            builder=builder,
            min_size=(min_sizes or {}).get(name, min_size),
            default_size=(default_sizes or {}).get(name, default_size),
            layouts=tuple(layouts),
            weights=files,
        )


def families():
    """The registered families, in registration order.

    Examples:
        >>> from keras_blocks.models import families
        >>> "efficientnet" in families()
        True
    """
    return dict(_FAMILIES)


def entries():
    """Every registered `ModelEntry`, by name."""
    return dict(_ENTRIES)


def list_models(pattern: str | None = None) -> list[str]:
    """The names of the reference models, optionally filtered.

    Args:
        pattern: str or None. A shell-style pattern (`"resnet*"`,
            `"*_bn"`), matched against the whole name; None lists all.

    Returns:
        A list of names, family by family, in each family's order.

    Examples:
        >>> from keras_blocks.models import list_models
        >>> list_models("resnet1*v2")
        ['resnet18v2', 'resnet101v2', 'resnet152v2']
    """
    if pattern is not None and not isinstance(pattern, str):
        raise ValueError(
            "Invalid value for argument `pattern`. Expected a string such as "
            f"'resnet*' or None. Received: pattern={pattern!r}"
        )
    return [
        name
        for name in _ENTRIES
        if pattern is None or fnmatch.fnmatchcase(name, pattern)
    ]


def model_entry(name):
    """The registry's `ModelEntry` of `name`; a ValueError naming the nearest
    names for a misspelled one.

    Examples:
        >>> from keras_blocks.models import model_entry
        >>> entry = model_entry("resnet50")
        >>> entry.family, entry.min_size, entry.default_size
        ('resnet', 32, 224)
        >>> sorted(entry.weights)
        ['keras_applications', 'torchvision']
    """
    if isinstance(name, str) and name in _ENTRIES:
        return _ENTRIES[name]
    close = difflib.get_close_matches(str(name), list(_ENTRIES), n=3)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"Invalid value for argument `name`. Expected the name of a reference "
        f"model (`keras_blocks.models.list_models()` lists the {len(_ENTRIES)})."
        f"{hint} Received: name={name!r}"
    )


def bound_options(entry):
    """The options a named configuration binds (`{"layout": "torchvision"}`
    for `alexnet_torchvision`'s builder)."""
    builder = entry.builder
    options = {}
    while isinstance(builder, functools.partial):
        options = {**builder.keywords, **options}
        builder = builder.func
    return options
