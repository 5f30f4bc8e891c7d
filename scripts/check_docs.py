"""Open the built documentation in headless Chromium: the index and one tutorial page must render (not
blank) with no console errors, no page may link outside the site, and on every page with equations each
displayed equation must fit its column at 1280 px (none runs off the page). Run by ``make docs`` after the build.

    python scripts/check_docs.py docs/_build/html [--screenshots DIR]     # DIR: one PNG per page with equations
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import sys
import threading
import time
from pathlib import Path

# For each displayed equation, how far it runs past its column (px; 0 when it fits).
_OVERFLOW = """return Array.from(document.querySelectorAll('div.math-display')).map(d => {
    const m = d.querySelector('math'), col = d.parentElement.getBoundingClientRect();
    return m ? Math.max(0, m.getBoundingClientRect().right - col.right, d.scrollWidth - d.clientWidth) : 0; });"""


def main(site: str, shots: str | None = None) -> int:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    root = Path(site).resolve()
    pages = [root / "index.html", root / "tutorials" / "02-bptt-gradcheck.html"]
    missing = [str(p) for p in pages if not p.is_file()]
    outside = sorted({f"{page.relative_to(root)}: {m}" for page in root.rglob("*.html")
                      for m in re.findall(r'(?:href|src)="(https?://[^"]+)"', page.read_text(encoding="utf-8"))})
    if outside:
        print(f"check_docs: pages link outside the site: {outside[:5]}", file=sys.stderr)
        return 1
    if missing:
        print(f"check_docs: not built: {missing}", file=sys.stderr)
        return 1
    opts = Options()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary:
        opts.binary_location = binary
    driver_path = shutil.which("chromedriver")
    driver = webdriver.Chrome(options=opts, service=Service(driver_path) if driver_path else None)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)    # as a reader would serve it
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    failures = []
    try:
        for page in pages:
            driver.get(base + page.relative_to(root).as_posix())
            time.sleep(0.5)
            text = driver.find_element("tag name", "body").text
            errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            if len(text.strip()) < 200:
                failures.append(f"{page}: blank ({len(text.strip())} characters of text)")
            if errors:
                failures.append(f"{page}: console errors {errors[:3]}")
            if page.name.startswith("02-") and "gradcheck passed" not in text:
                failures.append(f"{page}: the executed output is missing ('gradcheck passed')")
            if page.name.startswith("02-") and not driver.find_elements("css selector", "math"):
                failures.append(f"{page}: the equations are missing (no MathML)")
        for page in sorted(p for p in root.rglob("*.html") if "<math" in p.read_text(encoding="utf-8")):
            if "_modules" in page.parts or "generated" in page.parts:
                continue
            driver.get(base + page.relative_to(root).as_posix())
            time.sleep(0.3)
            over = [round(v) for v in driver.execute_script(_OVERFLOW)]
            if any(v > 1 for v in over):
                failures.append(f"{page.relative_to(root)}: displayed equations run off their column by {over} px")
            if shots:
                Path(shots).mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(Path(shots) / (page.stem + ".png")))
    finally:
        driver.quit()
        server.shutdown()
    for f in failures:
        print(f"check_docs: {f}", file=sys.stderr)
    if not failures:
        print(f"check_docs: {', '.join(p.name for p in pages)} render in Chromium, no console errors")
    return 1 if failures else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    shots = args[args.index("--screenshots") + 1] if "--screenshots" in args else None
    sys.exit(main(args[0], shots))
