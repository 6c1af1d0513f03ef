"""Builds the documentation site and checks it as a reader's browser sees it.

python -m tools.check_site                 # build --strict, API coverage, browser
python -m tools.check_site --no-build      # check the site/ already built

1. `mkdocs build --strict` into `site/`.
2. The API reference renders every public name: each name in
   `keras_blocks.__all__` and in the subpackages' `__all__` has its anchor (the
   dotted path mkdocstrings gives it) on an `api/` page.
3. The built site is served on 127.0.0.1 and every page is opened in headless
   Chromium (Debian's `chromium` package, driven by Playwright). A page fails on
   a console error, an uncaught exception, a failed request, a missing image, a
   Mermaid diagram that did not render, or an internal link whose page or
   anchor does not exist. A screenshot of each page goes to
   `artifacts/docs-screenshots/` (gitignored), kept as CI's artifact.
"""

import argparse
import asyncio
import contextlib
import functools
import http.server
import importlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "site"
SCREENSHOTS = ROOT / "artifacts" / "docs-screenshots"
CHROMIUM = "/usr/bin/chromium"
# The flags of the issue: no sandbox as root, and nothing that reaches out to
# the network (the machines are offline; refused connections log errors).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PUBLIC_MODULES = (
    "keras_blocks",
    "keras_blocks.layers",
    "keras_blocks.callbacks",
    "keras_blocks.efficientnet",
    "keras_blocks.augmentation",
    "keras_blocks.evaluation",
    "keras_blocks.distribute",
    "keras_blocks.porting",
    "keras_blocks.deploy",
    "keras_blocks.models",
)
ID = re.compile(r"""\bid=["']?([^"' >]+)""")


def build():
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(SITE)]
    print("$", " ".join(command), flush=True)
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def missing_api_names():
    """Public names without an anchor on any API reference page (or model
    page, where each family's module is rendered)."""
    anchors = set()
    for page in [*(SITE / "api").rglob("*.html"), *(SITE / "models").rglob("*.html")]:
        anchors.update(ID.findall(page.read_text(encoding="utf-8")))
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if f"{module_name}.{name}" not in anchors:
                missing.append(f"{module_name}.{name}")
    return missing


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(directory):
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def pages(site):
    """The site's pages as URL paths ("/", "/layers/", ...), 404 page excluded."""
    found = []
    for page in sorted(site.rglob("index.html")):
        relative = page.parent.relative_to(site).as_posix()
        found.append("/" if relative == "." else f"/{relative}/")
    return found


def target_file(site, path):
    """The file a URL path names in the built site, or None."""
    path = urllib.parse.unquote(path)
    candidate = site / path.lstrip("/")
    if candidate.is_dir():
        candidate = candidate / "index.html"
    return candidate if candidate.is_file() else None


@functools.cache
def ids_of(file):
    return set(ID.findall(file.read_text(encoding="utf-8")))


def check_links(site, base, hrefs):
    """Problems with a page's internal links: a missing page or anchor."""
    problems = []
    origin = urllib.parse.urlsplit(base)
    for href in sorted(set(hrefs)):
        url = urllib.parse.urlsplit(href)
        if url.scheme not in ("http", "https") or url.netloc != origin.netloc:
            continue
        file = target_file(site, url.path)
        if file is None:
            problems.append(f"broken link to {url.path}")
        elif (
            url.fragment
            and file.suffix == ".html"
            and urllib.parse.unquote(url.fragment) not in ids_of(file)
        ):
            problems.append(f"link to a missing anchor {url.path}#{url.fragment}")
    return problems


# Every image loaded, every Mermaid diagram rendered (Material replaces the
# `pre.mermaid` source with a `div.mermaid` holding the drawing in a closed
# shadow root; a diagram that fails to parse stays a `pre`), every link.
RENDERED = "el => el.tagName === 'DIV' && el.getBoundingClientRect().height > 0"
PAGE_STATE = f"""() => ({{
  images: [...document.images]
    .filter(img => !(img.complete && img.naturalWidth > 0))
    .map(img => img.getAttribute('src')),
  diagrams: [...document.querySelectorAll('.mermaid')].map({RENDERED}),
  hrefs: [...document.querySelectorAll('a[href]')].map(a => a.href),
}})"""


def launch_chromium(playwright):
    """Debian's Chromium, headless and offline, driven by Playwright."""
    if not Path(CHROMIUM).exists():
        raise SystemExit(
            f"{CHROMIUM} not found: install Debian's package "
            "(apt-get install chromium)."
        )
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )


# Pages open this many at a time: a page spends most of its time waiting
# (for the network to be idle, for a diagram) or in Chromium's own processes.
# The browser check of the 41 pages (with --no-build, a quiet 2-core
# machine): 122 s one at a time, 94 s three, 79 s six.
CONCURRENT_PAGES = 6


async def check_page(context, site, base, path, screenshots):
    """The problems of one page, after its screenshot; prints its line."""
    problems = []
    page = await context.new_page()
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and problems.append(f"console error: {message.text}")
        ),
    )
    page.on("pageerror", lambda error: problems.append(f"exception: {error}"))
    page.on(
        "requestfailed",
        lambda request: problems.append(
            f"request failed: {request.url} ({request.failure})"
        ),
    )
    page.on(
        "response",
        lambda response: (
            response.status >= 400
            and problems.append(f"HTTP {response.status}: {response.url}")
        ),
    )
    start = time.perf_counter()
    await page.goto(base + path, wait_until="networkidle")
    if await page.locator(".mermaid").count():
        with contextlib.suppress(Exception):
            await page.wait_for_function(
                f"[...document.querySelectorAll('.mermaid')].every({RENDERED})",
                timeout=10_000,
            )
    state = await page.evaluate(PAGE_STATE)
    problems += [f"missing image: {src}" for src in state["images"]]
    problems += [
        f"Mermaid diagram {i + 1} did not render"
        for i, rendered in enumerate(state["diagrams"])
        if not rendered
    ]
    problems += check_links(site, base, state["hrefs"])
    name = path.strip("/").replace("/", "__") or "index"
    await page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
    await page.close()
    status = "FAIL" if problems else "ok"
    print(
        f"  {status:<4} {path} ({time.perf_counter() - start:.1f} s, "
        f"{len(state['diagrams'])} diagrams, {len(state['hrefs'])} links)",
        flush=True,
    )
    return problems


async def _check_pages(site, screenshots):
    from playwright.async_api import async_playwright

    failures = {}
    with serve(site) as base:
        async with async_playwright() as playwright:
            browser = await launch_chromium(playwright)
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            slots = asyncio.Semaphore(CONCURRENT_PAGES)

            async def check(path):
                async with slots:
                    problems = await check_page(context, site, base, path, screenshots)
                if problems:
                    failures[path] = problems

            await asyncio.gather(*(check(path) for path in pages(site)))
            await browser.close()
    return dict(sorted(failures.items()))


def check_pages(site, screenshots):
    """`{path: problems}` of the pages that failed, each page opened in
    headless Chromium (CONCURRENT_PAGES at a time) and screenshotted."""
    if screenshots.exists():
        shutil.rmtree(screenshots)
    screenshots.mkdir(parents=True)
    return asyncio.run(_check_pages(site, screenshots))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-build", action="store_true", help="use site/ as built")
    args = parser.parse_args(argv)
    if not args.no_build and build():
        print("mkdocs build --strict failed")
        return 1
    missing = missing_api_names()
    if missing:
        print("Not in the API reference:", ", ".join(missing))
        return 1
    print("API reference: every public name has its entry.")
    print(f"Opening every page in {CHROMIUM} (screenshots: {SCREENSHOTS}):")
    failures = check_pages(SITE, SCREENSHOTS)
    for path, problems in failures.items():
        print(f"{path}:")
        for problem in problems:
            print(f"  - {problem}")
    count = len(pages(SITE))
    print(f"{count - len(failures)} of {count} pages passed the browser check.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
