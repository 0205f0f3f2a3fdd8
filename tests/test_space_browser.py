"""
The Space in a real browser: Debian's chromium driven by Selenium through chromium-driver. It opens the page,
picks two catalog items by typing into the search box, clicks Recommend and reads the table. Skipped only when
chromium or chromium-driver is not installed (`.ci/run` installs both with apt-get).

For the README screenshot, point it at the demo checkpoint:
    LMREC_SPACE_MODEL=outputs/demo/model LMREC_SPACE_SCREENSHOT=docs/space.png \
        .venv/bin/pytest tests/test_space_browser.py
"""

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from .test_space import free_port, start_space

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
                                       "chromium-driver)")


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1250"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_space_recommends_in_a_real_browser(browser, space_checkpoint, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    model = os.environ.get("LMREC_SPACE_MODEL", str(space_checkpoint))
    example = json.loads((Path(model) / "catalog" / "examples.json").read_text())[0]
    picks = example["history"][-2:]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"),
           "TRANSFORMERS_VERBOSITY": "error", "GRADIO_ANALYTICS_ENABLED": "False"}
    port = free_port()
    process = start_space(model, env, port)
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(browser, 90)
        search = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#picked input")))
        for text in picks:
            search.click()
            search.send_keys(text[:20])
            option = wait.until(EC.element_to_be_clickable(
                (By.CSS_SELECTOR, f'#picked li[data-testid="dropdown-option"][aria-label={json.dumps(text)}]')))
            option.click()
            browser.find_element(By.CSS_SELECTOR, "h1").click()  # closes the option list
        chosen = browser.find_element(By.CSS_SELECTOR, "#picked").text
        assert all(text in chosen for text in picks)

        browser.find_element(By.CSS_SELECTOR, "#recommend").click()
        expected = min(10, len(json.loads((Path(model) / "catalog" / "items.json").read_text())["texts"]) - 2)
        rows = '#results [role="row"]'
        wait.until(lambda driver: f"Top {expected} of" in driver.find_element(By.CSS_SELECTOR, "#status").text)
        wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, rows)) == expected + 1)  # + header
        cells = [row.text.split("\n") for row in browser.find_elements(By.CSS_SELECTOR, rows)[1:]]
        assert [int(cell[0]) for cell in cells] == list(range(1, len(cells) + 1))
        assert not {cell[1] for cell in cells} & set(picks)  # the history is left out by default
        scores = [float(cell[2]) for cell in cells]
        assert scores == sorted(scores, reverse=True)
        time.sleep(1.5)  # let the map draw before the screenshot
        screenshot = Path(os.environ.get("LMREC_SPACE_SCREENSHOT", tmp_path / "space.png"))
        assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000
    finally:
        process.terminate()
        process.wait(timeout=30)
