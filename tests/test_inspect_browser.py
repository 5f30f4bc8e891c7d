"""The report in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by Selenium.

The page must render without JavaScript errors; clicking a detector row must repaint the heatmap with that
cell; hovering a character must show its details; selecting a speaker's line with the mouse must list the
cells that are on over it and the other places they fire. A screenshot is saved (to LSTMKIT_SCREENSHOT as
well, when set: that is how the README's picture is made). Without a browser the test is skipped, except
in CI (CI=true), where a missing browser fails it: .ci/run installs one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import lstmkit as lk
from lstmkit.apps import charlm as ct
from lstmkit.cli import pretrained_path

WIDTH, HEIGHT = 1280, 800


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must run the browser test: .ci/run installs chromium and chromium-driver)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    binary = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
                  None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        _missing("no headless browser here: apt-get install chromium chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (it is in the dev extra)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WIDTH},{HEIGHT}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    driver.set_window_size(WIDTH, HEIGHT)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    model, vocab, _, _ = ct.load_run(pretrained_path())
    ids = lk.data.split_train_val(vocab.encode(lk.data.bundled_shakespeare()), 0.1)[1]
    text = vocab.decode(ids[:4000])
    path = tmp_path_factory.mktemp("report") / "report.html"
    lk.inspect.charlm_report(model, vocab, text, path, title="the pretrained Shakespeare model on held-out text",
                             progress=False)
    return path, text, model.cfg.hidden


def colours(driver, n: int = 400) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#text span')).slice(0, arguments[0])"
        ".map(s => s.style.background);", n)


def test_report_in_headless_chromium(browser, page, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    path, text, hidden = page
    d = browser
    d.get(path.as_uri())
    WebDriverWait(d, 20).until(lambda drv: drv.execute_script("return document.body.dataset.ready === '1'"))
    assert d.execute_script("return window.__lkErrors") == []
    severe = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe
    spans = d.find_elements(By.CSS_SELECTOR, "#text span")
    assert len(spans) == len(text)
    assert len(d.find_elements(By.CSS_SELECTOR, "#saturation svg circle")) == 2 * 3 * hidden

    # the page opens on the strongest detector's cell; pick another: click a detector row with another cell
    before = colours(d)
    opened = d.execute_script("return document.getElementById('cell').value")
    rows = d.find_elements(By.CSS_SELECTOR, "#detectors tbody tr")
    strongest = max((r for r in rows if r.get_attribute("data-cell")),
                    key=lambda r: abs(float(r.find_elements(By.TAG_NAME, "td")[2].text)))
    assert strongest.get_attribute("data-cell") == opened
    row = next(r for r in rows if r.get_attribute("data-cell") not in ("", opened))
    ActionChains(d).move_to_element(row).click().perform()
    assert "on" in row.get_attribute("class")
    chosen = d.execute_script("return document.getElementById('cell').value")
    assert chosen == row.get_attribute("data-cell")
    after = colours(d)
    assert after != before and len(set(after)) > 5

    # hover: the tooltip names the character and the model's guesses
    ActionChains(d).move_to_element(spans[200]).perform()
    tip = d.find_element(By.ID, "tip")
    assert tip.is_displayed() and "next:" in tip.text and "gates: i" in tip.text

    # select with the mouse a stretch where one of the page's cells is on (and off for 5 characters around):
    # that cell must head the list of matching cells, and the other places it fires must be listed
    a, b, name = d.execute_script("""
        for (let c = 0; c < D.cells.length; c++) {
          const on = (t) => cellValue(c, t) > 0.5;
          for (let t = 8; t < D.T - 8; t++) {
            if (!on(t) || on(t - 1)) continue;
            let e = t; while (e < D.T && on(e)) e++;
            let quiet = e - t >= 3 && e + 5 < D.T;
            for (let k = 1; k <= 5 && quiet; k++) quiet = !on(t - k) && !on(e + k - 1);
            if (quiet && !D.text.slice(t, e).includes("\\n")) return [t, e, D.cells[c].name];
            t = e;
          }
        }
        return null;""")
    first, last = spans[a], spans[b - 1]
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", first)    # no auto-scroll while dragging
    w = first.size["width"]
    ActionChains(d).move_to_element_with_offset(first, -w // 2 + 1, 0).click_and_hold() \
        .move_to_element_with_offset(last, w // 2 - 1, 0).release().perform()
    WebDriverWait(d, 5).until(lambda drv: "Selected" in drv.find_element(By.ID, "matches").text)
    matches = d.find_element(By.ID, "matches").text
    assert f"[{a}, {b})" in matches, (a, b, matches)
    cells = d.find_elements(By.CSS_SELECTOR, "#match-cells li")
    assert cells and any(c.text.startswith(name + " ·") for c in cells), (name, matches)
    assert "other place" in matches
    assert d.execute_script("return document.querySelectorAll('#text span.sel').length") == b - a
    assert d.execute_script("return document.querySelectorAll('#text span.hit').length") > 0
    assert d.execute_script("return document.getElementById('cell').value") != chosen or colours(d) == after
    assert d.execute_script("return window.__lkErrors") == []

    shot = tmp_path / "report.png"
    d.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("LSTMKIT_SCREENSHOT"):
        Path(os.environ["LSTMKIT_SCREENSHOT"]).write_bytes(shot.read_bytes())
