"""The site check fails where it should: a small site with one of each defect.

tools/run_all.py runs tools/check_site.py on the real site outside pytest;
this builds a site of two pages, not the real one, to check that the checker
finds each defect (a check that passes on a good site proves nothing)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import ROOT
from tools import check_site

pytestmark = [
    pytest.mark.backend_independent(
        reason="mkdocs and Chromium on a site of text: no backend runs"
    ),
    pytest.mark.skipif(
        not Path(check_site.CHROMIUM).exists(), reason="needs Debian's chromium"
    ),
]

CONFIG = """\
site_name: check
theme:
  name: material
  font: false
extra_javascript:
  - mermaid.min.js
markdown_extensions:
  - attr_list
  - md_in_html
  - pymdownx.superfences:
      custom_fences:
        - name: mermaid
          class: mermaid
          format: !!python/name:pymdownx.superfences.fence_code_format
nav:
  - index.md
  - bad.md
"""
GOOD = """\
# Good

## A heading

![A real image](dot.png)

[Bad page](bad.md) and <a href="./#a-heading">an anchor here</a>.

```mermaid
flowchart LR
  a["Conv 3x3"] --> b[BN] --> c[ReLU]
```
"""
BAD = """\
# Bad

![Missing image](missing.png)

<a href="../#no-such-anchor">missing anchor</a>
<a href="../nowhere/">missing page</a>

```mermaid
flowchart LR
  a[ --> ((
```

<script>console.error("boom");</script>
<script>setTimeout(() => { throw new Error("uncaught"); }, 0);</script>
"""
# A 1x1 PNG.
DOT = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


@pytest.mark.slow
def test_check_finds_each_defect(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (tmp_path / "mkdocs.yml").write_text(CONFIG)
    (docs / "index.md").write_text(GOOD)
    (docs / "bad.md").write_text(BAD)
    (docs / "dot.png").write_bytes(DOT)
    shutil.copy(ROOT / "docs" / "javascripts" / "mermaid.min.js", docs)
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "-q", "-d", "site"],
        cwd=tmp_path,
        check=True,
    )

    failures = check_site.check_pages(tmp_path / "site", tmp_path / "shots")

    assert set(failures) == {"/bad/"}, failures
    problems = "\n".join(failures["/bad/"])
    assert "missing image: missing.png" in problems
    assert "link to a missing anchor /#no-such-anchor" in problems
    assert "broken link to /nowhere/" in problems
    assert "Mermaid diagram 1 did not render" in problems
    assert "console error: boom" in problems
    assert "exception: " in problems and "uncaught" in problems
    assert "HTTP 404" in problems
    assert sorted(p.name for p in (tmp_path / "shots").iterdir()) == [
        "bad.png",
        "index.png",
    ]
