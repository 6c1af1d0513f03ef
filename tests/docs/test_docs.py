"""The documentation's code runs: every Python block of every page under docs/
and of README.md.

Every public class and function also carries an `Examples:` section, which
`pytest --doctest-modules keras_blocks` (in `tools/run_all.py`) runs.

The blocks of a docs page run in order in one namespace, as a reader would
paste them, in a temporary working directory, under the backend of the run.
The README's sections are read one at a time, so each of its blocks runs alone,
in a namespace of its own: a block that uses a name it does not define fails.
A block that cannot run here (it downloads) says why on the line before its
fence, and one that builds full-size networks, which JAX takes minutes to
initialize on a CPU, runs under TensorFlow only:

    <!-- skip: downloads ImageNet weights -->
    <!-- tensorflow only: builds seven 224x224 ResNets -->

What a page's code calls (layers, models, callbacks, recipes in tf.data,
exports) is checked on each backend in the other folders of tests/; here the
claim is that the code as written runs, which does not depend on the
backend: a page runs once, under TensorFlow when it has a block marked
`tensorflow only` (then all its blocks run), else in the backend-independent
pass. A page whose code is written for one backend would say so with a
marker of its own.
"""

import inspect
import re
import textwrap

import keras
import pytest

from keras_blocks import (
    augmentation,
    callbacks,
    deploy,
    distribute,
    efficientnet,
    evaluation,
    layers,
    models,
    porting,
)
from tests import ROOT

DOCS = ROOT / "docs"
README = ROOT / "README.md"
FENCE = re.compile(
    r"^(?P<marker>[ \t]*<!-- (?P<kind>skip|tensorflow only): (?P<reason>[^>]*?) -->\n)?"
    r"(?P<indent>[ \t]*)```(?P<lang>\w+)[^\n]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
    re.M | re.S,
)


def python_blocks(text):
    """Yields (line number, code, marker) per Python block; marker: None,
    "skip" or "tensorflow only"."""
    for match in FENCE.finditer(text):
        if match["lang"] not in ("python", "py"):
            continue
        if match["marker"] and not match["reason"].strip():
            raise ValueError(
                f"A block marked `{match['kind']}` must say why: "
                f"<!-- {match['kind']}: reason -->"
            )
        line = text.count("\n", 0, match.start("code")) + 1
        yield line, textwrap.dedent(match["code"]), match["kind"]


PAGES = sorted(
    page for page in DOCS.rglob("*.md") if any(python_blocks(page.read_text()))
)
INDEPENDENT = pytest.mark.backend_independent(
    reason="the page's code as written runs; what it calls is checked on each "
    "backend in the other folders of tests/"
)
TENSORFLOW_ONLY = pytest.mark.backends(
    "tensorflow",
    reason="blocks marked `tensorflow only` (full-size networks, exports, "
    "MirroredStrategy): the whole page runs there",
)


# Pages whose blocks train or build models for seconds (measured, on a
# loaded machine: over ~5 s): left out of the quick tier, as is every page
# with a `tensorflow only` block (full-size networks, exports).
SLOW_PAGES = {
    "augmentation.md",
    "callbacks.md",
    "getting-started.md",
    "index.md",
    "layers/pca_color_augmentation.md",
    "models/alexnet.md",
    "models/index.md",
    "models/vgg.md",
}


def page_param(page):
    """The page as a parameter, marked with the backends it runs under."""
    name = page.relative_to(DOCS).as_posix()
    markers = {marker for *_, marker in python_blocks(page.read_text())}
    tensorflow_only = "tensorflow only" in markers
    marks = [TENSORFLOW_ONLY if tensorflow_only else INDEPENDENT]
    if tensorflow_only or name in SLOW_PAGES:
        marks.append(pytest.mark.slow)
    return pytest.param(page, id=name, marks=marks)


@pytest.mark.backend_independent(reason="the names of SLOW_PAGES")
def test_slow_pages_exist():
    names = {page.relative_to(DOCS).as_posix() for page in PAGES}
    assert not SLOW_PAGES - names, SLOW_PAGES - names


@pytest.mark.backend_independent(reason="files found on disk")
def test_pages_with_code_are_found():
    assert len(PAGES) >= 1


@pytest.mark.parametrize("page", [page_param(page) for page in PAGES])
def test_code_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if not run_blocks(page):
        pytest.skip(f"{page}'s blocks do not run under {keras.backend.backend()}")


@pytest.mark.slow
@INDEPENDENT
@pytest.mark.parametrize(
    "line, code, marker",
    [
        pytest.param(*block, id=f"README.md:{block[0]}")
        for block in python_blocks(README.read_text())
    ],
)
def test_readme_blocks_run(line, code, marker, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if marker == "skip":
        pytest.skip("marked skip in README.md")
    run_block(README, line, code, {"__name__": "__docs__"})


def run_blocks(page):
    """Runs a page's Python blocks in order and returns how many ran."""
    namespace = {"__name__": "__docs__"}
    ran = 0
    for line, code, marker in python_blocks(page.read_text()):
        if marker == "skip" or (
            marker == "tensorflow only" and keras.backend.backend() != "tensorflow"
        ):
            continue
        run_block(page, line, code, namespace)
        ran += 1
    return ran


def run_block(page, line, code, namespace):
    # Padding with blank lines makes tracebacks point at the page's lines.
    exec(compile("\n" * (line - 1) + code, str(page), "exec"), namespace)


@pytest.mark.backend_independent(reason="text parsed in Python")
def test_fence_parser():
    text = (
        "# t\n\n```python\nx = 1\n```\n\n<!-- skip: downloads -->\n```python\n"
        'y = 2\n```\n\n```bash\nls\n```\n\n=== "Tab"\n\n    ```python\n'
        "    z = 3\n    ```\n\n<!-- tensorflow only: big -->\n```python\nw = 4\n```\n"
    )
    blocks = list(python_blocks(text))
    assert blocks == [
        (4, "x = 1\n", None),
        (9, "y = 2\n", "skip"),
        (19, "z = 3\n", None),
        (24, "w = 4\n", "tensorflow only"),
    ]
    with pytest.raises(ValueError, match="must say why"):
        list(python_blocks("<!-- skip:  -->\n```python\nx\n```\n"))


# Presets of EfficientNetB0, whose example they share: building B1-B7 in
# doctests would take most of a minute per backend.
NO_EXAMPLE = {f"EfficientNetB{i}" for i in range(1, 8)}


@pytest.mark.backend_independent(reason="docstrings read in Python")
@pytest.mark.parametrize(
    "name",
    [
        f"{module.__name__}.{name}"
        for module in (
            layers,
            callbacks,
            efficientnet,
            augmentation,
            evaluation,
            distribute,
            porting,
            deploy,
            models,
        )
        for name in module.__all__
        if name not in NO_EXAMPLE
        and (inspect.isclass(getattr(module, name)) or callable(getattr(module, name)))
    ],
)
def test_public_names_have_examples(name):
    module_name, _, attribute = name.rpartition(".")
    docstring = inspect.getdoc(
        getattr(__import__(module_name, fromlist=["_"]), attribute)
    )
    assert docstring and "\nExamples:\n" in docstring, f"{name} has no Examples section"
    examples = docstring.split("\nExamples:\n", 1)[1]
    assert ">>> " in examples, f"{name}'s Examples have no doctest lines"
