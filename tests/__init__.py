"""The test suite, one package per concern (layers, models, callbacks, ...).

`children/` holds the scripts that tests start as processes; collection
ignores it (`norecursedirs` in pyproject.toml).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILDREN = ROOT / "tests" / "children"
