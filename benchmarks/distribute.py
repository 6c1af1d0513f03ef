"""Section `distribute`: the training step of a CIFAR ResNet-20 on N replicas
against 1, at the same batch per replica.

The model is `keras_blocks.models.cifar_resnet`'s `CIFARResNet(20)` on 32x32 images
(depth 8 on 8x8 in `--smoke`). One side trains on N replicas with a global
batch of N x `--distribute-batch-size`, the other on one replica with
`--distribute-batch-size`; each timed call is `--distribute-steps`
`train_on_batch` steps. Two figures: the ratio of the step times (N / 1: 1.0
is perfect scaling, as N replicas then do N times the work in the same time)
and the scaling efficiency, images/s on N / (N x images/s on 1), which is the
inverse of that ratio.

- TensorFlow: `tf.distribute.MirroredStrategy` over the machine's GPUs when it
  has N or more, else over N logical CPU devices (GPUs hidden, so both sides
  run on the CPU), with `bn_synchronized=False` and `True`; one replica is
  the default strategy. `train_on_batch` hands tensors that are not
  distributed values to every replica whole (`Strategy.run`), so each replica
  would compute the whole global batch; the N-replica side gets its batch as
  one element of `strategy.experimental_distribute_dataset`, split among the
  replicas, as `fit` does.
- JAX: `keras.distribution.DataParallel` over N devices (the accelerators
  when there are N, else N CPU devices from `JAX_NUM_CPU_DEVICES`); one
  replica is the first device without a distribution. `bn_synchronized`
  changes nothing there: one program computes over the sharded batch, so the
  statistics are the global batch's already.
- PyTorch: no row. Keras 3.15 has no engine that drives several devices from
  one torch process; data parallelism is `DistributedDataParallel`, one
  process per device (`examples/_ddp.py`), which this in-process comparison
  does not time.

Devices must be configured before TensorFlow or JAX starts, so both sides run
in a child process (`python -m benchmarks.distribute --child ...`), timed
against each other by `_harness.compare` there; it prints its rows as JSON.
N logical CPU devices share the machine's cores: on a CPU the figures show
what the replication costs, not a speed-up.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Seconds the child may run: a hung child must not hang the run (or CI).
TIMEOUT_S = {"smoke": 600, "full": 3600}


def measure(args):
    """Training-step time on `--distribute-replicas` replicas against one,
    measured in a child process that sets the devices up first."""
    import keras

    backend = keras.config.backend()
    if backend not in ("tensorflow", "jax"):
        print(f"  no in-process multi-device engine on {backend}: no row", flush=True)
        return []
    depth, image_size = (8, 8) if args.smoke else (20, 32)
    command = [
        sys.executable,
        "-m",
        "benchmarks.distribute",
        "--child",
        f"--replicas={args.distribute_replicas}",
        f"--batch-size={args.distribute_batch_size}",
        f"--steps={args.distribute_steps}",
        f"--repeats={args.repeats}",
        f"--depth={depth}",
        f"--image-size={image_size}",
        f"--dtype-policy={args.dtype_policy}",
        f"--jit-compile={str(args.jit_compile).lower()}",
    ]
    # The child's progress goes to this process's stderr as it comes; its
    # stdout is the JSON of its rows.
    child = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": backend},
        stdout=subprocess.PIPE,
        text=True,
        timeout=TIMEOUT_S["smoke" if args.smoke else "full"],
    )
    if child.returncode:
        raise RuntimeError(
            f"{' '.join(command)} exited with {child.returncode} (its stderr is "
            f"above). Its stdout:\n{child.stdout[-2000:]}"
        )
    return json.loads(child.stdout.strip().splitlines()[-1])


def settings(args):
    """This section's settings, as the table says when it was measured."""
    return (
        f"{args.distribute_replicas} replicas against 1, batch "
        f"{args.distribute_batch_size} a replica, {args.distribute_steps} steps a "
        f"call, {args.repeats} repeats, {args.dtype_policy}, "
        f"jit_compile={args.jit_compile}"
    )


def child(argv=None):
    """The child process: sets up the devices, then times N replicas against
    one and prints the rows as one JSON line."""
    parser = argparse.ArgumentParser(description="benchmarks.distribute child")
    parser.add_argument("--child", action="store_true", required=True)
    parser.add_argument("--replicas", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--repeats", type=int, required=True)
    parser.add_argument("--depth", type=int, required=True)
    parser.add_argument("--image-size", type=int, required=True)
    parser.add_argument("--dtype-policy", required=True)
    parser.add_argument("--jit-compile", choices=("auto", "true", "false"))
    args = parser.parse_args(argv)
    args.jit_compile = {"true": True, "false": False}.get(
        args.jit_compile, args.jit_compile
    )
    backend = os.environ["KERAS_BACKEND"]
    # Progress to stderr: stdout carries the JSON only.
    with contextlib.redirect_stdout(sys.stderr):
        if backend == "tensorflow":
            setup = _tensorflow_setup(args.replicas)
        else:
            setup = _jax_setup(args.replicas)
        rows = _measure_in_child(args, setup)
    print(json.dumps(rows))


def _tensorflow_setup(replicas):
    """How each side runs on TensorFlow, the devices set up before it starts:
    a dict of the engine's name, the devices, the context of the one-replica
    side ("single") and of the N-replica side ("scope"), the function that
    hands a global batch to the N replicas, and the `bn_synchronized`
    values to measure."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) >= replicas:
        devices = [f"/gpu:{i}" for i in range(replicas)]
        engine = f"MirroredStrategy, {replicas} GPUs"
    else:
        tf.config.set_visible_devices([], "GPU")
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * replicas
        )
        devices = [f"/cpu:{i}" for i in range(replicas)]
        engine = f"MirroredStrategy, {replicas} logical CPUs"
    strategy = tf.distribute.MirroredStrategy(devices)

    def distribute(x, y):
        """The global batch split among the replicas, as `fit` splits it, and
        the batch of each replica."""
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(len(x))
        x, y = next(iter(strategy.experimental_distribute_dataset(dataset)))
        return x, y, [int(value.shape[0]) for value in x.values]

    return {
        "engine": engine,
        "devices": devices,
        "single": contextlib.nullcontext,  # the default strategy
        "scope": strategy.scope,
        "distribute": distribute,
        "bn_synchronized": (False, True),
        # train_on_batch cannot build the loss from distributed values (it
        # reads their shapes): one eager call on plain tensors builds it.
        "build_state": True,
    }


def _jax_setup(replicas):
    """As `_tensorflow_setup`, on JAX: the CPU devices set up before it
    starts."""
    os.environ["JAX_NUM_CPU_DEVICES"] = str(replicas)  # before JAX starts
    import jax
    import keras

    accelerators = [device for device in jax.devices() if device.platform != "cpu"]
    if len(accelerators) >= replicas:
        devices = accelerators[:replicas]
        engine = f"DataParallel, {replicas} {devices[0].platform.upper()}s"
    else:
        devices = jax.devices("cpu")[:replicas]
        engine = f"DataParallel, {replicas} CPU devices"
    distribution = keras.distribution.DataParallel(devices=devices)

    def distribute(x, y):
        """The global batch sharded as `train_on_batch` shards it (given
        sharded arrays, it keeps them), and the batch of each replica."""
        x, y = (
            jax.device_put(a, distribution.get_data_layout(a.shape).backend_layout)
            for a in (x, y)
        )
        return x, y, [shard.data.shape[0] for shard in x.addressable_shards]

    return {
        "engine": engine,
        "devices": [str(device) for device in devices],
        "single": lambda: jax.default_device(devices[0]),
        "scope": distribution.scope,
        "distribute": distribute,
        # Stored and unused on JAX: the statistics are the global batch's.
        "bn_synchronized": (False,),
        "build_state": False,
    }


def _measure_in_child(args, setup):
    import keras
    import numpy as np

    from benchmarks import _harness
    from keras_blocks.models import cifar_resnet

    keras.config.set_dtype_policy(args.dtype_policy)
    replicas, batch = args.replicas, args.batch_size
    rng = np.random.default_rng(0)
    shape = (replicas * batch, args.image_size, args.image_size, 3)
    x = rng.uniform(0, 1, shape).astype("float32")
    y = rng.integers(0, 10, replicas * batch)

    def build(synchronized):
        keras.utils.set_random_seed(0)
        model = cifar_resnet.CIFARResNet(
            args.depth,
            bn_synchronized=synchronized,
            input_shape=shape[1:],
        )
        model.compile(
            keras.optimizers.SGD(0.01, momentum=0.9),
            "sparse_categorical_crossentropy",
            jit_compile=args.jit_compile,
        )
        return model

    def train(model, context, x, y):
        def call():
            with context():
                for _ in range(args.steps):
                    loss = model.train_on_batch(x, y)
            return float(loss)  # waits for the last step

        return call

    rows = []
    for synchronized in setup["bn_synchronized"]:
        _harness.clear_session()
        with setup["single"]():
            single = build(synchronized)
            x_single = keras.ops.convert_to_tensor(x[:batch])
            y_single = keras.ops.convert_to_tensor(y[:batch])
        with setup["scope"]():
            replicated = build(synchronized)
            if setup["build_state"]:
                replicated.compute_loss(y=y[:1], y_pred=replicated(x[:1]))
            x_replicated, y_replicated, replica_batches = setup["distribute"](x, y)
        result = _harness.compare(
            train(replicated, setup["scope"], x_replicated, y_replicated),
            train(single, setup["single"], x_single, y_single),
            args.repeats,
            warmup=1,
        )
        images = args.steps * batch
        rows.append(
            {
                "case": f"CIFAR ResNet-{args.depth}, bn_synchronized={synchronized}",
                "engine": setup["engine"],
                "devices": setup["devices"],
                "replicas": replicas,
                "replica_batches": replica_batches,
                "input": f"{batch} a replica, {args.image_size}x{args.image_size}x3, "
                f"{keras.config.dtype_policy().name}, {args.steps} "
                f"step{'s' if args.steps > 1 else ''} a call",
                "goal": None,
                "ours_images_per_s": replicas * images / result["ours_s"],
                "reference_images_per_s": images / result["reference_s"],
                # images/s on N / (N x images/s on 1) = time on 1 / time on N
                "efficiency": 1 / result["ratio"],
                "efficiency_min": 1 / result["pair_ratio_max"],
                "efficiency_max": 1 / result["pair_ratio_min"],
                "steps": args.steps,
                **result,
            }
        )
        _harness.report(rows[-1])
        print(
            f"  {'':<48} {replicas} replicas: "
            f"{rows[-1]['ours_images_per_s']:.1f} images/s, 1: "
            f"{rows[-1]['reference_images_per_s']:.1f}; scaling efficiency "
            f"{rows[-1]['efficiency']:.0%}",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    child()
