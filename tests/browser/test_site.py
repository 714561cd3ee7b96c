"""The course's website (``make site``) in a real browser: every page loads with no console error, every
figure image is present, every formula renders, every internal link resolves (the website issue)."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

from conftest import ARTIFACTS
from harness import free_port


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from course_kit.site import build_site

    start = time.perf_counter()
    html = build_site(tmp_path_factory.mktemp("site"))
    seconds = time.perf_counter() - start
    assert seconds < 60, f"the site took {seconds:.0f} s to build (well under a minute is the budget)"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"base": f"http://127.0.0.1:{server.server_address[1]}/", "html": html}
    finally:
        server.shutdown()


def _pages(html: Path):
    return sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                  if p.name not in ("genindex.html", "search.html") and not p.relative_to(html).as_posix().startswith("_"))


MATHJAX_DONE_JS = """async () => {
    for (let k = 0; k < 100 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); k++)
        await new Promise(r => setTimeout(r, 100));
    if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return 'no MathJax';
    await MathJax.startup.promise;
    return 'done';
}"""


def test_every_page_loads_with_figures_formulas_and_links(site, browser):
    pages = _pages(site["html"])
    assert "index.html" in pages and len([p for p in pages if p.startswith("labs/")]) == 8
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    problems, checked_links = [], set()
    try:
        for name in pages:
            page = context.new_page()
            console = []
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console.append(str(e)))
            page.goto(site["base"] + name, wait_until="load")
            has_math = page.evaluate("() => document.querySelectorAll('.math').length") > 0
            if has_math:
                state = page.evaluate(MATHJAX_DONE_JS)
                if state != "done":
                    problems.append(f"{name}: MathJax did not load ({state})")
                errors = page.evaluate("() => [...document.querySelectorAll('mjx-merror, [data-mjx-error]')].map(e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 120))")
                if errors:
                    problems.append(f"{name}: formulas MathJax could not render: {errors[:3]}")
                unrendered = page.evaluate("() => [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).length")
                if unrendered:
                    problems.append(f"{name}: {unrendered} formulas left untypeset")
            broken = page.evaluate("() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 100))")
            if broken:
                problems.append(f"{name}: images that did not load: {broken[:3]}")
            if name.startswith("labs/"):
                figures = page.evaluate("() => [...document.images].filter(i => i.src.includes('_images')).length")
                if figures == 0:
                    problems.append(f"{name}: no figure on a lab page")
            for href in page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)"):
                target = urlparse(href)
                if not href.startswith(site["base"]) or target.path in checked_links:
                    continue
                checked_links.add(target.path)
                response = context.request.get(urljoin(site["base"], target.path))
                if response.status != 200:
                    problems.append(f"{name}: internal link {target.path} answers {response.status}")
            if console:
                problems.append(f"{name}: console errors: {console[:3]}")
            if name in ("index.html", "labs/01_cfg_guidance.html"):
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / f"site-{Path(name).stem}.png"), full_page=False)
            page.close()
    finally:
        context.close()
    assert not problems, "\n".join(problems)


def test_nothing_is_spoiled(site):
    for page in (site["html"] / "labs").glob("*.html"):
        text = page.read_text()
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text, f"{page.name}: a solution marker on the site"
