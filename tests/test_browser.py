"""The built book in a real browser (Debian's chromium, driven by Playwright; no network).

Builds a small book from the fixture notebook (smoke profile, no model needed), serves
``_build/html`` on 127.0.0.1 and opens every page: nothing may fail to load, nothing may be
requested from another host, no console error, math is typeset, and the checkpoint scrubber's
slider changes the image shown. Skipped locally without /usr/bin/chromium (``.ci/install-browser``
installs it); in CI (``CI=true``) a missing browser is a failure, never a skip.
"""
from __future__ import annotations

import functools
import http.server
import os
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
from fixture_book import FIXTURES, make_book  # noqa: E402

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run; see .ci/install-browser)")
    pytest.skip(f"{reason}; run .ci/install-browser (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} not found")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("python playwright is not installed")
    with sync_playwright() as p:
        # executable_path only: Playwright's own browser download is never used
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from priorlib.compendium import book

    root = make_book(tmp_path_factory.mktemp("browserbook"), {"01_fixture.ipynb": FIXTURES / "01_fixture.ipynb"})
    book.execute_all(book.find_notebooks(root / "notebooks"), root / "book",
                     {"profile": "smoke", "n_frames": 3}, root=root, log=lambda *a, **k: None)
    book.ensure_assets(root)
    book.build_book(root, log=lambda *a, **k: None)
    html = root / "_build" / "html"

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(html)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield html, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class PageWatch:
    """Collects everything that went wrong while a page loaded."""

    def __init__(self, page, base):
        self.problems = []
        self.base = base
        page.on("console", self._console)
        page.on("pageerror", lambda err: self.problems.append(f"page error: {err}"))
        page.on("requestfailed", lambda r: self.problems.append(f"failed request: {r.url} ({r.failure})"))
        page.on("response", self._response)
        page.on("request", self._request)

    def _console(self, msg):
        if msg.type == "error":
            self.problems.append(f"console error: {msg.text}")

    def _response(self, response):
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def _request(self, request):
        if not request.url.startswith((self.base, "data:", "blob:", "about:")):
            self.problems.append(f"request to another host: {request.url}")


def visit(page, url: str):
    """Open ``url`` and wait until the network is idle, so the page's own late requests (its icon) finish
    before the test moves on: a navigation would otherwise abort them and read as a failed request."""
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")


def _visible_image(page):
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('.priorlib-scrubber img'))
                 .filter(img => img.offsetParent !== null).map(img => img.src)"""
    )


def test_every_page_loads_clean(browser, site):
    html, base = site
    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                   if not p.relative_to(html).parts[0].startswith("_"))  # _static: theme fragments
    assert "book/01_fixture.html" in pages and "book/methods.html" in pages
    for name in pages:
        page = browser.new_page()
        watch = PageWatch(page, base)
        visit(page, base + name)
        page.wait_for_load_state("networkidle")
        page.close()
        assert not watch.problems, f"{name}: " + "; ".join(watch.problems)


def test_math_is_typeset(browser, site):
    _, base = site
    page = browser.new_page()
    watch = PageWatch(page, base)
    for name, at_least in (("book/methods.html", 5), ("book/01_fixture.html", 1)):
        visit(page, base + name)
        page.wait_for_selector("mjx-container", timeout=15000)
        assert page.locator("mjx-container").count() >= at_least, name
    # the fixture's inline $x^2$ became MathJax output, not literal dollars
    assert "$x^2$" not in page.inner_text("main")
    page.close()
    assert not watch.problems, "; ".join(watch.problems)


def test_scrubber_slider_changes_image(browser, site):
    _, base = site
    page = browser.new_page()
    watch = PageWatch(page, base)
    visit(page, base + "book/01_fixture.html")
    handle = page.locator(".priorlib-scrubber .widget-slider .noUi-handle").first
    handle.wait_for(timeout=15000)  # the saved widget state rendered without a kernel
    assert page.locator(".priorlib-scrubber .widget-play").count() == 1
    first = _visible_image(page)
    assert len(first) == 1 and first[0].startswith(("blob:", "data:image/png"))

    handle.focus()
    handle.press("ArrowRight")
    page.wait_for_function(
        """(before) => {
            const shown = Array.from(document.querySelectorAll('.priorlib-scrubber img'))
                .filter(img => img.offsetParent !== null).map(img => img.src);
            return shown.length === 1 && shown[0] !== before;
        }""",
        arg=first[0], timeout=10000,
    )
    second = _visible_image(page)
    assert second != first
    assert "checkpoint 1" in page.inner_text(".priorlib-scrubber")
    page.close()
    assert not watch.problems, "; ".join(watch.problems)


def test_bibliography_lists_the_paper(browser, site):
    _, base = site
    page = browser.new_page()
    watch = PageWatch(page, base)
    visit(page, base + "book/references.html")
    text = page.inner_text("main")
    assert "exploring embedding priors in prompt-tuning" in text.lower() and "Sedov" in text and "2412.18582" in text
    assert "Rajpurkar" in text and "Lester" in text  # SQuAD and prompt tuning are cited too
    # the intro's citation links to the bibliography entry
    visit(page, base + "book/intro.html")
    cite = page.locator("a[href*='references.html#'][title*='Sedov']")
    assert cite.count() >= 1, "the intro does not cite the paper"
    page.close()
    assert not watch.problems, "; ".join(watch.problems)


def test_figure_links_to_its_full_size_png(browser, site):
    html, base = site
    page = browser.new_page()
    watch = PageWatch(page, base)
    visit(page, base + "book/01_fixture.html")
    figure = page.locator(".priorlib-figure").filter(has=page.locator("img[alt*='Bar chart']"))
    assert figure.count() == 1, "the fixture's figure is not wrapped in a full-size link"
    img = figure.locator("img")
    assert img.get_attribute("alt") == "Figure 1: Bar chart: a is 1, b is 2"  # its alt, not a hash file name
    assert "Figure 1." in page.inner_text("main") and "Two bars." in page.inner_text("main")
    link = figure.locator("a.priorlib-fullsize-link")
    href = link.get_attribute("href")
    assert href.endswith(".png") and not href.startswith("data:")
    assert not watch.problems, "; ".join(watch.problems)
    # (a bare PNG document then asks for /favicon.ico, which no book page does: not a problem of the book)
    with page.expect_navigation() as nav:
        link.click()
    response = nav.value
    assert response.status == 200 and response.headers["content-type"] == "image/png"
    assert page.url.endswith(".png")
    assert page.evaluate("() => document.images.length === 1 && document.images[0].naturalWidth > 0")
    page.close()
    # and from file://, as the reproduce page suggests opening the book
    page = browser.new_page()
    page.goto((html / "book" / "01_fixture.html").as_uri(), wait_until="load")
    page.locator(".priorlib-figure a.priorlib-fullsize").first.click()
    page.wait_for_load_state("load")
    assert page.url.startswith("file://") and page.url.endswith(".png")
    assert page.evaluate("() => document.images.length === 1 && document.images[0].naturalWidth > 0")
    page.close()


def test_wide_table_scrolls_inside_the_column(browser, site):
    _, base = site
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = PageWatch(page, base)
    visit(page, base + "book/01_fixture.html")
    wrap = page.locator(".priorlib-table").first
    wrap.wait_for()
    dims = wrap.evaluate("""(el) => {
        const main = document.querySelector('article') || document.querySelector('main');
        const before = el.scrollLeft;
        el.scrollLeft = 10000;
        return {scroll: el.scrollWidth, client: el.clientWidth, column: main.clientWidth,
                right: el.getBoundingClientRect().right, columnRight: main.getBoundingClientRect().right,
                moved: el.scrollLeft - before, overflow: getComputedStyle(el).overflowX};
    }""")
    assert dims["scroll"] > dims["client"], f"the fixture's table is not wider than the column: {dims}"
    assert dims["client"] <= dims["column"] + 1 and dims["right"] <= dims["columnRight"] + 1, dims
    assert dims["overflow"] == "auto" and dims["moved"] > 0, dims
    headers = page.locator(".priorlib-table th").all_inner_texts()
    assert "Final metric number 0" in headers and "Seeds" in headers and "" not in headers  # words, no index
    cells = page.locator(".priorlib-table td").all_inner_texts()
    assert "1 — (n=1)" in cells and "0.01" in cells and any("± " in c and "(n=2)" in c for c in cells)
    page.close()
    assert not watch.problems, "; ".join(watch.problems)


def test_search_with_the_documented_local_server_shows_excerpts(browser, site):
    """The reproduce page's command (`python -m http.server --bind 127.0.0.1 --directory _build/html 8000`),
    run as written but on a free port: search finds the fixture's prose and shows an excerpt."""
    import re
    import socket
    import subprocess
    import time
    import urllib.request

    html, _ = site
    text = (Path(__file__).resolve().parents[1] / "book" / "reproduce.md").read_text()
    assert "python -m http.server --bind 127.0.0.1 --directory _build/html 8000" in text
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", "_build/html", str(port)]
    server = subprocess.Popen(cmd, cwd=html.parent.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}/"
        for _ in range(100):
            try:
                urllib.request.urlopen(base, timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        page = browser.new_page()
        watch = PageWatch(page, base)
        visit(page, base + "search.html?q=folds")
        page.wait_for_selector("#search-results li p.context", timeout=20000)
        results = page.locator("#search-results li")
        assert results.count() >= 1
        excerpt = page.locator("#search-results li p.context").first.inner_text()
        assert re.search(r"folds", excerpt, re.I), excerpt
        page.close()
        assert not watch.problems, "; ".join(watch.problems)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_without_javascript_each_scrubber_shows_its_last_frame(browser, site):
    _, base = site
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    visit(page, base + "book/01_fixture.html")
    widgets = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
    assert widgets >= 1
    fallback = page.locator(".priorlib-scrubber-fallback")
    assert fallback.count() == widgets  # one per scrubber (the fixture's only widgets)
    for i in range(widgets):
        box = fallback.nth(i)
        assert box.is_visible()
        assert "JavaScript is off" in box.inner_text() and "checkpoint 2 (frame 3 of 3)" in box.inner_text()
        img = box.locator("img")
        assert img.evaluate("(el) => el.complete && el.naturalWidth > 0")
    context.close()


def test_provenance_page_and_warning(browser, site):
    """The fixture book is no git checkout: its one chapter's commit is unknown, so the build page lists it and
    the chapter warns at its top."""
    _, base = site
    page = browser.new_page()
    watch = PageWatch(page, base)
    visit(page, base + "book/build.html")
    text = page.inner_text("main")
    assert "01 · Fixture chapter" in text and "smoke" in text and "do not match the rest of the book" in text
    visit(page, base + "book/01_fixture.html")
    warning = page.locator(".priorlib-provenance-warning")
    assert warning.count() == 1 and warning.is_visible() and "commit is not recorded" in warning.inner_text()
    assert warning.locator("a[href$='build.html']").count() == 1  # it links to the build page
    sidebar = page.locator("nav.bd-docs-nav").inner_text()
    assert "01 · Fixture chapter" in sidebar
    page.close()
    assert not watch.problems, "; ".join(watch.problems)
