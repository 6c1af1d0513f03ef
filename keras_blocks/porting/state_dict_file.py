"""Reading a PyTorch state dict from a `.safetensors` or `.pth` file."""

import os
import pickle
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pth", ".pt", ".bin")
# The keys under which training scripts (timm's, torchvision's references)
# store the model's tensors beside the optimizer's and the epoch.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema")


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch state dict file, as NumPy arrays by key.

    A `.safetensors` file is read with `safetensors`' NumPy API (PyTorch is not
    needed). A `.pth`, `.pt` or `.bin` file is read with
    `torch.load(..., weights_only=True)`: only tensors and plain containers
    are unpickled, never code from the file. A training checkpoint that keeps
    the model's tensors under `"state_dict"` or `"model"` (timm's and
    torchvision's training scripts) is unwrapped, and the `module.` prefix of
    a model saved from `DistributedDataParallel` is removed.

    Args:
        path: str or path-like. The file.

    Returns:
        A dict of float32 (or integer) NumPy arrays keyed as in the file.

    Raises:
        FileNotFoundError: if there is no such file.
        ValueError: if the suffix is not one of the above, the file is
            truncated or corrupt, it holds more than tensors (a pickled
            module or other objects), or PyTorch is needed and missing.

    Examples:
    >>> import os, tempfile
    >>> import numpy as np
    >>> from safetensors.numpy import save_file
    >>> from keras_blocks.porting import read_state_dict
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.safetensors")
    >>> save_file({"fc.weight": np.ones((2, 3), "float32")}, path)
    >>> {k: v.shape for k, v in read_state_dict(path).items()}
    {'fc.weight': (2, 3)}
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No state dict file at {path}.")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in SAFETENSORS_SUFFIXES:
        tensors = _read_safetensors(path)
    elif suffix in TORCH_SUFFIXES:
        tensors = _read_torch(path)
    else:
        supported = ", ".join(SAFETENSORS_SUFFIXES + TORCH_SUFFIXES)
        raise ValueError(
            f"Cannot read {path}: a state dict file ends in {supported}. "
            f"Received a file ending in {suffix or '(nothing)'}."
        )
    return _without_ddp_prefix(tensors)


def state_dict_arrays(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A state dict already in memory (PyTorch tensors or arrays), as NumPy
    arrays: half-precision tensors become float32."""
    arrays = {}
    for key, value in state_dict.items():
        if hasattr(value, "detach"):  # a torch.Tensor
            value = value.detach().cpu()
            if value.is_floating_point():
                value = value.float()
            value = value.numpy()
        value = np.asarray(value)
        if value.dtype.kind == "f":
            value = value.astype("float32", copy=False)
        arrays[str(key)] = value
    return arrays


def _read_safetensors(path):
    try:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
    except ImportError as error:
        raise ValueError(
            f"Reading {path} needs the `safetensors` package: pip install safetensors."
        ) from error
    try:
        return state_dict_arrays(load_file(path))
    except (SafetensorError, OSError, TypeError, ValueError) as error:
        raise ValueError(
            f"Cannot read {path} as a safetensors file ({error}). It may be "
            "truncated or corrupt: download or convert it again."
        ) from None


def _read_torch(path):
    try:
        import torch
    except ImportError as error:
        raise ValueError(
            f"Reading {path} needs PyTorch (pip install torch), or save the "
            "state dict as .safetensors, which needs only the `safetensors` "
            "package."
        ) from error
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" not in str(error):  # not a pickle at all
            raise ValueError(
                f"Cannot read {path} as a PyTorch file "
                f"({_plain(str(error).splitlines()[-1])}). It may be truncated or "
                "corrupt: download or convert it again."
            ) from None
        # weights_only=True refuses any object that is not a tensor or a
        # plain container: a pickled nn.Module, an optimizer, a custom class.
        raise ValueError(
            f"{path} holds more than tensors, and only tensors are read "
            "(torch.load with weights_only=True: a file's code never runs). "
            "Save `model.state_dict()` instead of the model. PyTorch says: "
            f"{_plain(str(error).splitlines()[0])}"
        ) from None
    except Exception as error:
        # A damaged file fails anywhere in PyTorch's reader and unpickler:
        # RuntimeError, EOFError, or IndexError and KeyError on a broken stack.
        raise ValueError(
            f"Cannot read {path} as a PyTorch file ({error}). It may be "
            "truncated or corrupt: download or convert it again."
        ) from None
    return state_dict_arrays(_unwrapped(content, path))


def _unwrapped(content, path):
    """The tensors of `content`: a state dict, or a checkpoint holding one."""
    if isinstance(content, Mapping):
        if _all_tensors(content):
            return content
        for key in WRAPPER_KEYS:
            inner = content.get(key)
            if isinstance(inner, Mapping) and _all_tensors(inner):
                return inner
        others = sorted(k for k, v in content.items() if not _is_tensor(v))
        raise ValueError(
            f"{path} holds more than tensors: the values of {others[:5]} are "
            f"not. A training checkpoint keeps the model's tensors under one of "
            f"{list(WRAPPER_KEYS)}; save `model.state_dict()` instead."
        )
    raise ValueError(
        f"{path} holds a {type(content).__name__}, not a state dict (a dict of "
        "tensors). Save `model.state_dict()`."
    )


def _is_tensor(value):
    return hasattr(value, "detach") and hasattr(value, "shape")


def _all_tensors(mapping):
    return bool(mapping) and all(_is_tensor(v) for v in mapping.values())


def _without_ddp_prefix(tensors):
    prefix = "module."
    if tensors and all(key.startswith(prefix) for key in tensors):
        return {key[len(prefix) :]: value for key, value in tensors.items()}
    return tensors


def _plain(text):
    """`text` without terminal color codes (PyTorch bolds part of its
    messages)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
