"""The reference models, assembled from `keras_blocks` and core Keras layers.

One readable file per model family (a stage table, one builder and a `MODELS`
dict of named configurations), the datasets they train on, `train.py` that
trains any of them by name, and the course experiments. A package, so that
the scripts, tests, benchmarks and tools import them one way
(`from examples import resnet`); run the scripts as modules from the
repository root:

    python -m examples.train
    python -m examples.resnet --model resnet50 --smoke
"""
