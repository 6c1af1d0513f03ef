"""What the wheel carries: the package with its reference models, the
license, its notice, py.typed; and what it gives installed, away from the
repository."""

import os
import subprocess
import sys
import textwrap
import zipfile

import pytest

from tests import ROOT

pytestmark = pytest.mark.backend_independent(
    reason="the wheel's files: the same wheel on every backend"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    directory = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps"),
            *("--no-build-isolation", "-w", str(directory), str(ROOT)),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = directory.glob("keras_blocks-*.whl")
    return path


@pytest.mark.slow
def test_wheel_carries_license_notice_and_py_typed(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (license_file,) = [n for n in names if n.endswith("licenses/LICENSE")]
        assert "Apache License" in archive.read(license_file).decode()
        assert any(n.endswith("licenses/NOTICE") for n in names)
        assert "keras_blocks/py.typed" in names
    # Nothing but the package: no tests, examples or docs in site-packages.
    assert {n.split("/")[0] for n in names} == {
        "keras_blocks",
        wheel.name.split("-py")[0] + ".dist-info",
    }
    # The reference models are part of the package.
    families = [n for n in names if n.startswith("keras_blocks/models/")]
    for family in ("resnet", "efficientnet", "vgg", "alexnet", "googlenet"):
        assert f"keras_blocks/models/{family}.py" in families


@pytest.mark.slow
def test_the_installed_package_builds_models_by_name_outside_the_repository(
    wheel, tmp_path
):
    # The wheel installed on its own (no editable link to this checkout) and
    # run from a folder outside the repository: the models come from the
    # installed package, by name.
    target = tmp_path / "site"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "-q", "--no-deps"),
            *("--no-compile", "--target", str(target), str(wheel)),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    script = textwrap.dedent(
        """
        import keras_blocks
        from keras_blocks.models import get_model, list_models
        print(keras_blocks.__file__)
        print(len(list_models()))
        model = get_model("cifar_resnet20", include_preprocessing=True)
        print(model.layers[1].name)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(target), "KERAS_BACKEND": "torch"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    location, count, first = result.stdout.split()[-3:]
    assert location.startswith(str(target)), location
    assert int(count) > 40 and first == "preprocessing"


def test_vendored_mermaid_keeps_its_notice():
    notice = (ROOT / "docs" / "javascripts" / "mermaid.LICENSE").read_text()
    assert "MIT License" in notice and "Knut Sveidqvist" in notice
    assert (ROOT / "docs" / "javascripts" / "mermaid.min.js").exists()
