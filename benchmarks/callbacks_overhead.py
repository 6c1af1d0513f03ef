"""Section `callbacks`: epoch time of a CIFAR ResNet-20 with each of the
library's callbacks at its defaults, and all three, against none, and the
time spent in their hooks (`HookClock`). In `--smoke`, a CIFAR ResNet-8 on
64 + 32 8x8 images for 3 epochs: the same callbacks, hooks and epochs
measured, and the traced steps of a third of the layers."""

import statistics
import tempfile
import time

import keras
import numpy as np

from benchmarks import _harness, _markdown
from keras_blocks import callbacks
from keras_blocks.models import cifar_resnet


class HookClock:
    """Seconds spent inside the hooks of some callbacks.

    Every hook a callback's class overrides is replaced, on the instance, by
    a timed call of itself: the callbacks' own cost, without the noise of
    the training around it.
    """

    def __init__(self, callbacks):
        self.seconds = 0.0
        for callback in callbacks:
            for name in dir(keras.callbacks.Callback):
                if name.startswith("on_") and getattr(type(callback), name) is not (
                    getattr(keras.callbacks.Callback, name)
                ):
                    setattr(callback, name, self._timed(getattr(callback, name)))

    def _timed(self, hook):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return hook(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed


class EpochTimer(keras.callbacks.Callback):
    """Seconds between consecutive epoch starts (it runs last in the list, so
    an epoch holds every other callback's epoch hooks), and the seconds a
    `HookClock` counted in each."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def on_train_begin(self, logs=None):
        self.starts, self.hooks = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.starts.append(time.perf_counter())
        self.hooks.append(self.clock.seconds)

    def on_train_end(self, logs=None):
        self.on_epoch_begin(None)

    @property
    def epochs(self):
        return np.diff(self.starts).tolist()

    @property
    def hook_seconds(self):
        return np.diff(self.hooks).tolist()


def measure(args):
    """Epoch time with each callback at its defaults, against none, and the
    share of it spent in the callbacks' hooks."""
    n_train, n_val, epochs = (64, 32, 3) if args.smoke else (1024, 256, 9)
    depth, size = (8, 8) if args.smoke else (20, 32)
    # Not counted: the first epochs (compilation, warm-up), the last (its end
    # runs the train-end hooks).
    measured = slice(1, -1) if args.smoke else slice(2, -1)
    rng = np.random.default_rng(0)
    x = rng.random((n_train + n_val, size, size, 3), dtype="float32")
    y = rng.integers(0, 10, n_train + n_val)
    train, val = (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])

    # Each callback at its defaults, made for a run's directory.
    single = {
        "CheckpointManager": lambda d: callbacks.CheckpointManager(f"{d}/ckpt"),
        "TensorBoardImageLogger": lambda d: callbacks.TensorBoardImageLogger(
            f"{d}/tb", val
        ),
        "ReduceLROnPlateau": lambda d: callbacks.ReduceLROnPlateau(),
    }
    configurations = {
        "none": lambda d: [],
        **{name: lambda d, make=make: [make(d)] for name, make in single.items()},
        "all three": lambda d: [make(d) for make in single.values()],
    }
    names = list(configurations)

    def run(name):
        """(epoch seconds, hook seconds) of the measured epochs of one run."""
        with tempfile.TemporaryDirectory() as directory:
            _harness.clear_session()
            keras.utils.set_random_seed(0)
            model = cifar_resnet.CIFARResNet(depth, input_shape=(size, size, 3))
            model.compile(
                "adam", "sparse_categorical_crossentropy", metrics=["accuracy"]
            )
            timed = configurations[name](directory)
            timer = EpochTimer(HookClock(timed))
            model.fit(
                *train,
                batch_size=64,
                epochs=epochs,
                validation_data=val,
                callbacks=[*timed, timer],
                verbose=0,
            )
            print(
                f"  {name:<24} epochs {np.round(timer.epochs, 2)} "
                f"hooks {np.round(timer.hook_seconds, 3)}",
                flush=True,
            )
            return timer.epochs[measured], timer.hook_seconds[measured]

    runs = _harness.interleave(names, args.repeats, run)
    times = {name: [epochs for epochs, _ in runs[name]] for name in names}
    hooks = {name: [hooks for _, hooks in runs[name]] for name in names}
    rows = []
    for name in names[1:]:
        rows.append(
            {
                "case": f"epoch with {name}",
                "input": f"CIFAR ResNet-{depth}, {n_train} + {n_val} images, batch 64",
                "goal": 1.03,
                **_overhead(times[name], hooks[name], times["none"]),
                "repeats": args.repeats,
                "warmup": measured.start,
            }
        )
        _harness.report(rows[-1])
        print(f"  {'':<48} hooks {_markdown.share(rows[-1])} of the epoch", flush=True)
    return rows


def _overhead(times, hooks, baseline):
    """A callback configuration's cost from its runs' epoch times and hook
    seconds, against the runs without callbacks (lists of runs of epochs).

    Two figures: the ratio of the median epochs (each run's pair in the
    spread), and the mean hook seconds per epoch over the median epoch
    without callbacks. Medians, so that an epoch the machine slowed down
    weighs no more than any other; the mean of the hooks, so that the
    epochs with a confusion matrix count as often as they come.
    """
    pairs = [
        statistics.median(a) / statistics.median(b)
        for a, b in zip(times, baseline, strict=True)
    ]
    hook_share = [
        statistics.mean(h) / statistics.median(b)
        for h, b in zip(hooks, baseline, strict=True)
    ]
    ours = statistics.median([t for run in times for t in run])
    base = statistics.median([t for run in baseline for t in run])
    return {
        "ours_s": ours,
        "reference_s": base,
        "ratio": ours / base,
        "pair_ratio_min": min(pairs),
        "pair_ratio_max": max(pairs),
        "hook_share": statistics.mean([h for run in hooks for h in run]) / base,
        "hook_share_min": min(hook_share),
        "hook_share_max": max(hook_share),
        "times_s": {"ours": times, "reference": baseline},
        "hook_times_s": hooks,
    }
