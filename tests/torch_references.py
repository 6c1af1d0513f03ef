"""torchvision's and timm's networks as references, at random weights.

torchvision's PyPI wheel is built against the CUDA torch: with the CPU torch
its compiled operators do not load, and `import torchvision` fails on two
operator schemas. Defining them first lets its pure-Python models load (the
developers' guide); timm imports torchvision.
"""

import functools
import os

import numpy as np
import pytest

_SCHEMAS = []  # the library that defines torchvision's two schemas, kept alive


@functools.cache
def torchvision():
    torch = pytest.importorskip("torch")
    try:
        import torchvision as module
    except RuntimeError:  # the two schemas: define them, then import again
        library = torch.library.Library("torchvision", "DEF")
        library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        library.define(
            "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
        )
        _SCHEMAS.append(library)
        import torchvision as module
    return module


@functools.cache
def timm():
    torchvision()
    return pytest.importorskip("timm")


def randomized(module, seed=0):
    """`module` in inference mode with every parameter and buffer random.

    Fresh BN statistics (mean 0, variance 1, gamma 1, beta 0) are an identity
    that hides a swapped mean and variance, or gamma and beta.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue  # num_batches_tracked
            values = torch.randn(tensor.shape, generator=generator)
            if name.endswith("running_var"):
                values = values.abs() + 0.5
            elif name.endswith(("running_mean", "bias")):
                values = values * 0.1
            elif name.endswith("weight") and tensor.ndim == 1:  # BN gamma
                values = 1 + 0.1 * values
            else:  # kernels: keep activations O(1) through the depth
                fan_in = max(1, tensor[0].numel())
                values = values * (1.0 / fan_in) ** 0.5
            tensor.copy_(values)
    return module.eval()


def save_state_dict(module, directory, name):
    """The module's state dict as `name.pth` and `name.safetensors`."""
    import torch
    from safetensors.torch import save_file

    state = module.state_dict()
    pth = os.path.join(directory, f"{name}.pth")
    torch.save(state, pth)
    tensors = {k: v.contiguous() for k, v in state.items()}
    safetensors = os.path.join(directory, f"{name}.safetensors")
    save_file(tensors, safetensors)
    return pth, safetensors


def torch_outputs(module, images_nhwc):
    """The module's outputs for NHWC float32 images (NumPy)."""
    import torch

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))
        return module(x).numpy()


def assert_logits_close(ours, theirs, scale=1e-4):
    """At most `scale` of the logits' scale (their largest magnitude) apart;
    returns the largest difference relative to that scale."""
    ours, theirs = np.asarray(ours, "float64"), np.asarray(theirs, "float64")
    assert ours.shape == theirs.shape
    relative = np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs))
    assert relative <= scale, f"logits differ by {relative:.2e} of their scale"
    return relative
