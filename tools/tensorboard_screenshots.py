"""Screenshots of TensorBoard showing what `TensorBoardImageLogger` writes.

For the callbacks guide (docs/callbacks.md). The script

1. trains `examples/`' CIFAR ResNet-20 for real on scikit-learn's digits
   (offline, 16x16, the setup of `examples/train.py`) with the three callbacks
   of `keras_blocks.callbacks` and Keras' `TensorBoard` in one `fit`: a cosine
   decay schedule that `ReduceLROnPlateau` warms up and scales, and a
   `TensorBoardImageLogger` that writes a confusion matrix every other epoch;
2. starts `tensorboard --logdir` on that run (a subprocess on a free local
   port);
3. opens TensorBoard's Time Series dashboard in headless Chromium (Playwright,
   the system's `/usr/bin/chromium`), sets scalar smoothing to 0 and shows
   outliers, filters one tag regex at a time (`SHOTS`), and saves element
   screenshots of the cards to `docs/images/tensorboard/`: `predictions.png`
   and `confusion_matrix.png` (actual size, first epoch, slider at step 0),
   `histograms.png` (two weight histograms) and `learning_rate.png` (full
   width). The only change to TensorBoard's page is a style that lets an
   image card grow to its image instead of scrolling (`IMAGE_CARD_CSS`);
4. stops TensorBoard.

About 2 minutes on 2 CPU cores, most of it training.

    python -m tools.tensorboard_screenshots                   # all of it
    python -m tools.tensorboard_screenshots --logdir runs/tb  # keep the run
    python -m tools.tensorboard_screenshots --logdir runs/tb --no-train

The backend is TensorFlow unless `KERAS_BACKEND` says otherwise; the run is
seeded, but timings (and so the screenshots' "Relative" column) vary.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

OUTPUT = ROOT / "docs" / "images" / "tensorboard"
VIEWPORT = {"width": 1400, "height": 1000}

# The run: examples/train.py's model, data and batch size.
MODEL = "cifar_resnet20"
IMAGE_SIZE = 16
EPOCHS = 10
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
WARMUP_EPOCHS = 2
VALIDATION_SPLIT = 0.1
SEED = 0

# One screenshot per file: the tags shown (a regex for TensorBoard's tag filter),
# how many cards that gives, and for images the step shown, as an index into
# the logged steps (None: the latest).
SHOTS = {
    "predictions": {"tags": r"^images/predictions$", "cards": 1, "step": 0},
    "confusion_matrix": {"tags": r"^confusion_matrix$", "cards": 1, "step": 0},
    "histograms": {
        # A kernel and a batch normalization's moving variance.
        "tags": r"^weights/(conv1/conv/kernel|stage3_block3/bn2/moving_variance)$",
        "cards": 2,
        "width": 1150,  # two cards a row, wide enough for the tags
    },
    "learning_rate": {"tags": r"^learning_rate$", "cards": 1},
}
# An image card is as tall as its grid row and scrolls: let it show the whole
# image at its actual size, and be as wide as that.
IMAGE_CARD_CSS = """
card-view:has(image-card) { width: max-content !important; min-width: 335px; }
image-card, image-card-component {
  height: auto !important;
  flex-basis: auto !important;
}
"""


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--logdir", type=Path, help="keep the run here (default: a temporary one)"
    )
    parser.add_argument(
        "--no-train", action="store_true", help="screenshot an existing --logdir"
    )
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if args.no_train and args.logdir is None:
        parser.error("--no-train needs --logdir")
    return args


if __name__ == "__main__":
    # --help and a wrong argument answer before Keras loads (seconds).
    parse_args(None)

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from keras_blocks.callbacks import (
    CheckpointManager,
    ReduceLROnPlateau,
    TensorBoardImageLogger,
)
from tools import check_site


def train(logdir, epochs):
    """Trains the run into `logdir`; returns its settings and duration."""
    from examples import datasets
    from examples.models import image_shape
    from keras_blocks.models import get_model

    (x, y), _ = datasets.load("digits", IMAGE_SIZE, seed=SEED)
    split = int(len(x) * (1 - VALIDATION_SPLIT))  # as train.py
    x_train, x_val, y_train, y_val = x[:split], x[split:], y[:split], y[split:]
    keras.utils.set_random_seed(SEED)
    model = get_model(
        MODEL, input_shape=image_shape(IMAGE_SIZE), classes=datasets.CLASSES["digits"]
    )
    steps = -(-len(x_train) // BATCH_SIZE)  # per epoch
    schedule = keras.optimizers.schedules.CosineDecay(
        LEARNING_RATE, decay_steps=epochs * steps
    )
    model.compile(
        keras.optimizers.Adam(schedule),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = [
        CheckpointManager(
            logdir / "checkpoints", monitor="val_accuracy", seed=SEED, verbose=0
        ),
        keras.callbacks.TensorBoard(str(logdir)),  # train/ and validation/
        TensorBoardImageLogger(
            logdir / "images", (x_val, y_val), confusion_matrix_freq=2
        ),
        ReduceLROnPlateau(
            "val_accuracy",
            factor=0.5,
            patience=2,
            warmup_steps=WARMUP_EPOCHS * steps,
            verbose=1,
        ),
    ]
    start = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        batch_size=BATCH_SIZE,
        epochs=epochs,
        validation_data=(x_val, y_val),
        callbacks=callbacks,
        verbose=2,
    )
    return {
        "model": MODEL,
        "data": f"digits at {IMAGE_SIZE}x{IMAGE_SIZE}, {len(x_train)} training "
        f"and {len(x_val)} validation images",
        "epochs": epochs,
        "backend": keras.config.backend(),
        "fit_seconds": round(time.perf_counter() - start, 1),
    }


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def tensorboard(logdir, timeout=120):
    """Runs `tensorboard --logdir` until the block ends; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with (
        tempfile.TemporaryFile() as log,
        subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT) as process,
    ):
        try:
            deadline = time.monotonic() + timeout
            while not _serves_run(url, "images"):  # the logger's run loaded
                if process.poll() is not None:
                    log.seek(0)
                    output = log.read().decode()
                    raise RuntimeError(f"TensorBoard exited:\n{output}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"TensorBoard did not load {logdir} in time")
                time.sleep(1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _serves_run(url, run):
    with (
        contextlib.suppress(OSError, ValueError),
        urllib.request.urlopen(f"{url}/data/runs", timeout=5) as reply,
    ):
        return run in json.load(reply)
    return False


def screenshots(url, output):
    """Saves one PNG per entry of `SHOTS` into `output`; returns their paths."""
    from playwright.sync_api import sync_playwright

    output.mkdir(parents=True, exist_ok=True)
    paths = []
    with sync_playwright() as playwright:
        browser = check_site.launch_chromium(playwright)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{url}/#timeseries")
            page.wait_for_selector("card-view", timeout=60_000)
            # Scalars as logged: no smoothing, the whole range on the axis.
            settings = page.locator("metrics-dashboard-settings")
            smoothing = settings.locator("input.slider-input").first
            smoothing.fill("0")
            smoothing.press("Tab")
            outliers = settings.get_by_role(
                "checkbox", name="Ignore outliers in chart scaling"
            )
            outliers.uncheck()
            time.sleep(2)  # the settings apply after a moment
            if settings.locator("input[type=range]").nth(1).input_value() != "0":
                raise RuntimeError("TensorBoard did not take smoothing=0")
            page.get_by_role("button", name="Close side pane").click()
            page.add_style_tag(content=IMAGE_CARD_CSS)
            for name, shot in SHOTS.items():
                path = output / f"{name}.png"
                shoot(page, path, **shot)
                paths.append(path)
        finally:
            browser.close()
    return paths


def shoot(page, path, tags, cards, step=None, width=VIEWPORT["width"]):
    page.set_viewport_size({**VIEWPORT, "width": width})
    tag_filter = page.get_by_role("combobox", name="Filter tags (regex)")
    tag_filter.fill(tags)
    tag_filter.press("Escape")  # closes the autocomplete list
    # Cards of other tags stay in the page, hidden, and the last filter's
    # cards stay visible for a moment: wait for this filter's.
    visible = page.locator("card-view:visible")
    deadline = time.monotonic() + 30
    while True:
        titles = visible.evaluate_all(
            "cards => cards.map(card => card.querySelector('tb-truncated-path')"
            "?.getAttribute('title'))"
        )
        if len(titles) == cards and all(re.search(tags, t or "") for t in titles):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"Cards {titles} for the tag filter {tags}")
        time.sleep(0.5)
    card = visible.first
    if card.locator("image-card-component").count():
        actual = "image-card-component.actual-size"
        if not card.locator(actual).count():  # the toggle is for all image cards
            card.get_by_role("button", name="Toggle actual image size").click()
        if step is not None:  # the slider steps through the logged steps
            slider = card.locator("input[type=range]")
            slider.focus()
            slider.press("Home")
            for _ in range(step):
                slider.press("ArrowRight")
        page.wait_for_function(  # the image loaded and laid out
            "card => [...card.querySelectorAll('img')].every("
            "img => img.complete && img.width > 0)",
            arg=card.element_handle(),
        )
    elif cards == 1:  # a chart: as wide as the dashboard
        card.get_by_role("button", name="Toggle full size mode").click()
    page.evaluate("document.activeElement.blur()")  # no focus ring
    page.mouse.move(0, 0)  # no hover effects
    time.sleep(3)  # images load, charts draw
    if cards == 1:
        card.screenshot(path=path)
    else:
        page.locator("metrics-card-grid:visible").first.screenshot(path=path)
    print(f"{path}: {path.stat().st_size // 1024} KB")


def main(argv=None):
    args = parse_args(argv)

    logdir = args.logdir or Path(tempfile.mkdtemp(prefix="tensorboard-screenshots-"))
    start = time.perf_counter()
    try:
        if not args.no_train:
            if logdir.exists() and any(logdir.iterdir()):
                raise SystemExit(f"{logdir} is not empty: choose another --logdir.")
            run = train(logdir, args.epochs)
            print("Run:", json.dumps(run))
        with tensorboard(logdir) as url:
            screenshots(url, args.output)
    finally:
        if args.logdir is None:
            shutil.rmtree(logdir, ignore_errors=True)
    print(f"Done in {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
