"""What the wheel carries besides the code: the license, its notice, py.typed."""

import subprocess
import sys
import zipfile

import pytest

from tests import ROOT

pytestmark = pytest.mark.backend_independent(
    reason="the wheel's files: the same wheel on every backend"
)


@pytest.mark.slow
def test_wheel_carries_license_notice_and_py_typed(tmp_path):
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps"),
            *("--no-build-isolation", "-w", str(tmp_path), str(ROOT)),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("keras_blocks-*.whl")
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


def test_vendored_mermaid_keeps_its_notice():
    notice = (ROOT / "docs" / "javascripts" / "mermaid.LICENSE").read_text()
    assert "MIT License" in notice and "Knut Sveidqvist" in notice
    assert (ROOT / "docs" / "javascripts" / "mermaid.min.js").exists()
