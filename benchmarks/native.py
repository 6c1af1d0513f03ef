"""Section `native` (PyTorch backend): ours against torchvision in plain PyTorch.

What a PyTorch user would pick instead of our models: torchvision's
`resnet50` and `efficientnet_b0` (random weights), run as PyTorch runs them
(`model.eval()` under `torch.no_grad()` for inference; `model.train()`,
cross-entropy, `backward` and `torch.optim.SGD(momentum=0.9)` for a training
step; on the GPU when there is one, under `torch.autocast` to the half type
of a mixed `--dtype-policy`), against ours on the PyTorch backend (`predict_on_batch`,
`train_on_batch` with Keras' SGD at the same rate and momentum), in each data
format: each Keras model is built with `keras.config.image_data_format()`
set to it and fed images in that layout; torchvision takes NCHW. Same
process, same batch, interleaved by `_harness.compare`; the reference side
of every row is torchvision's.

Ours: `keras_blocks.models.resnet`'s ResNet-50 in torchvision's layout (the stride in
the 3x3, "v1.5": the same convolutions as torchvision's), and
`keras_blocks.efficientnet.EfficientNetB0` (keras.applications'
architecture, which also rescales and normalizes its input in the model;
torchvision's leaves that to the data pipeline). On other backends the
section measures nothing. `--smoke`: ResNet-50 only, one warm-up call.
"""

import sys
from pathlib import Path

import keras
import numpy as np

from benchmarks import _harness
from keras_blocks import efficientnet
from keras_blocks.models import resnet

ROOT = Path(__file__).resolve().parents[1]
# name: (ours, torchvision's constructor name)
MODELS = {
    "ResNet50": (lambda shape: resnet.ResNet(50, input_shape=shape), "resnet50"),
    "EfficientNetB0": (
        lambda shape: efficientnet.EfficientNetB0(input_shape=shape),
        "efficientnet_b0",
    ),
}
FORMATS = ("channels_last", "channels_first")
# On the PyTorch backend, ours should be within this of torchvision's time.
GOAL = 1.10


def measure(args):
    """Inference and training step of each model, ours in each data format,
    against torchvision's."""
    if keras.config.backend() != "torch":
        print("  (PyTorch backend only)")
        return []
    import torch

    models = _torchvision().models
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # Under a mixed policy, torchvision's side runs under PyTorch's autocast
    # to the same half type, as a PyTorch user trains in mixed precision.
    policy = keras.config.dtype_policy()
    half = getattr(torch, policy.compute_dtype)

    def autocast():
        return torch.autocast(device, half, enabled=half != torch.float32)

    rng = np.random.default_rng(0)
    size, batch = args.image_size, args.batch_size
    images = rng.uniform(0, 1, (batch, 3, size, size)).astype("float32")
    labels = rng.integers(0, 1000, batch)
    x_torch = torch.from_numpy(images).to(device)
    y_torch = torch.from_numpy(labels).to(device)
    rows = []
    models_measured = {"ResNet50": MODELS["ResNet50"]} if args.smoke else MODELS
    warmup = 1 if args.smoke else 2
    for name, (build_ours, constructor) in models_measured.items():
        torch.manual_seed(0)
        theirs = getattr(models, constructor)().to(device)
        optimizer = torch.optim.SGD(theirs.parameters(), 0.01, momentum=0.9)

        def their_inference(theirs=theirs):
            theirs.eval()
            with torch.no_grad(), autocast():
                return theirs(x_torch).float().cpu().numpy()

        def their_step(theirs=theirs, optimizer=optimizer):
            theirs.train()
            optimizer.zero_grad()
            with autocast():
                logits = theirs(x_torch)
                loss = torch.nn.functional.cross_entropy(logits.float(), y_torch)
            loss.backward()
            optimizer.step()
            return loss.item()  # waits for the step

        for data_format in FORMATS:
            ours = _build(build_ours, data_format, size)
            nhwc = data_format == "channels_last"
            x = keras.ops.convert_to_tensor(
                images.transpose(0, 2, 3, 1).copy() if nhwc else images
            )
            y = keras.ops.convert_to_tensor(labels)
            for task, run_ours, run_theirs in (
                (
                    "inference",
                    lambda m=ours, x=x: m.predict_on_batch(x),
                    their_inference,
                ),
                (
                    "training step",
                    lambda m=ours, x=x, y=y: m.train_on_batch(x, y),
                    their_step,
                ),
            ):
                result = _harness.compare(
                    run_ours, run_theirs, repeats=args.repeats, warmup=warmup
                )
                rows.append(
                    {
                        "case": f"{name} {task}, {data_format}, against torchvision",
                        "input": f"{batch}x{size}x{size}x3, {policy.name}",
                        "goal": GOAL,
                        **result,
                    }
                )
                _harness.report(rows[-1])
            del ours
            _harness.clear_session()
    return rows


def settings(args):
    return (
        f"batch {args.batch_size}, {args.image_size}x{args.image_size} images, "
        f"{args.repeats} repeats, {keras.config.dtype_policy().name}, "
        "torchvision in eager PyTorch"
    )


def _build(build, data_format, size):
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format(data_format)
    try:
        keras.utils.set_random_seed(0)
        shape = (size, size, 3) if data_format == "channels_last" else (3, size, size)
        model = build(shape)
    finally:
        keras.config.set_image_data_format(previous)
    model.compile(
        keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy"
    )
    return model


def _torchvision():
    """torchvision, imported as the tests import it (its wheel's compiled
    operators do not load with the CPU torch; see tests/porting/torch_references.py)."""
    sys.path.insert(0, str(ROOT))
    from tests.porting.torch_references import torchvision

    return torchvision()
