"""keras_blocks against its Keras equivalents, timed side by side.

`run` is the command line of the sections (one module each), `efficientnet_build`
times the EfficientNet-B7 build, `_harness` holds the one timing loop. Run them
as modules from the repository root: `python -m benchmarks.run --smoke`.
"""
