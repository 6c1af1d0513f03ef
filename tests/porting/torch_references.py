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


def randomized(module, seed=0, size=64):  # size: int or (height, width)
    """`module` in inference mode with every parameter and buffer random, and
    outputs that depend on the input.

    Fresh BN statistics (mean 0, variance 1, gamma 1, beta 0) are an identity
    that hides a swapped mean and variance, or gamma and beta; random ones
    unrelated to the activations shrink or blow up the signal layer after
    layer, until the outputs no longer depend on the input (EfficientNet-B0's
    logits did by 4e-7 of their scale) and a wrong input path goes unseen.
    So: He-scaled random kernels, random biases and BN affine parameters, and
    BN statistics measured on the activations of random `size` x `size`
    images (a cumulative average over a few batches), then a check that two
    images give outputs at least 1% of their scale apart. Compare at that
    size: statistics measured at another one no longer fit the activations,
    which can grow without bound through a deep network (EfficientNet-B3's
    logits reached 1e4 at 97x97 after measuring at 64x64, and float32 and
    float64 PyTorch then differed by 2e-3 of them).
    """
    import torch

    height, width = (size, size) if isinstance(size, int) else size
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue  # num_batches_tracked
            values = torch.randn(tensor.shape, generator=generator)
            if name.endswith(("running_mean", "running_var")):
                continue  # measured below
            if name.endswith("bias"):
                values = values * 0.1
            elif name.endswith("weight") and tensor.ndim == 1:  # BN gamma
                # Small gammas keep round-off from growing through the depth
                # (a random BN network amplifies it layer after layer:
                # ResNet-152's float32 logits were 6e-4 of their scale from
                # float64's with gammas near 1, 3e-5 with these), the
                # bottleneck's last one smallest, as timm's zero_init_last.
                last = name.endswith("bn3.weight")
                values = (0.1 if last else 0.25) * (1 + 0.2 * values)
            else:  # kernels: He's scale keeps the signal through ReLUs
                fan_in = max(1, tensor[0].numel())
                values = values * (2.0 / fan_in) ** 0.5
            tensor.copy_(values)
        norms = [m for m in module.modules() if isinstance(m, _batch_norms(torch))]
        convolutions = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
        if norms and convolutions:
            channels = convolutions[0].in_channels
            for norm in norms:
                norm.reset_running_stats()
                norm.momentum = None  # a cumulative average
            module.eval()  # no dropout or stochastic depth: BN alone measures
            for norm in norms:
                norm.train()
            for _ in range(3):
                module(torch.randn((4, channels, height, width), generator=generator))
            for norm in norms:
                norm.momentum = 0.1
        module.eval()
        if convolutions:
            x = torch.randn(
                (2, convolutions[0].in_channels, height, width), generator=generator
            )
            out = module(x)
            out = out if isinstance(out, torch.Tensor) else out[0]
            spread = (out[0] - out[1]).abs().max() / out.abs().max()
            assert spread > 0.01, f"outputs depend on the input by {spread:.1e}"
    return module


def _batch_norms(torch):
    return (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)


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


def saved_state_dict(module, directory, name):
    """Saves the module's state dict as `save_state_dict` does; checks that
    both files read back the same arrays, key by key; returns the
    `.safetensors` path.

    A file is loaded as the arrays `read_state_dict` reads from it (the
    loader never looks at the format again), so a model loaded from one of
    the two gives the logits it gives from the other: loading both into a
    large model would check the reader twice, at the cost of a load and a
    forward pass."""
    from keras_blocks.porting import read_state_dict

    pth, safetensors = save_state_dict(module, directory, name)
    a, b = read_state_dict(pth), read_state_dict(safetensors)
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    return safetensors


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
