"""The project's tools: the CI runner, the docs site's checker and generators.

- `run_all`: ruff, the docs site, then the tests under each backend (what
  `.ci/run` runs);
- `check_site`: builds the docs site and opens every page in Chromium;
- `flops`: the multiply-accumulates of a model, as the papers count FLOPs;
- `model_tables`: the parameter and MAC tables of the model pages;
- `tensorboard_screenshots`: the TensorBoard screenshots of the callbacks guide.

Run them as modules from the repository root, e.g. `python -m tools.run_all`.
"""
