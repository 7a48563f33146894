"""``ddnsr serve`` driven in a real browser (headless Chromium through Selenium and chromedriver).

Upload a real photo and a broken file, pick a model, wait for the result, download it and compare it
with ``ddnsr upscale``'s file byte for byte, move the comparison slider and zoom, run the degradation
view, cancel a running job. A screenshot of the page goes to the test's folder and, when
``DDNSR_SCREENSHOT_DIR`` is set, to ``$DDNSR_SCREENSHOT_DIR/serve.png``. Skipped, with the reason, where
Chromium, chromedriver or Selenium is absent (``.ci/run`` installs them).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from conftest import DATA, gate_worker, need

pytest.importorskip("flask")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
if CHROMIUM is None or DRIVER is None:
    pytest.skip("no chromium / chromedriver on PATH (Debian: apt-get install chromium chromium-driver)",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from ddnsr.serve.app import ServeConfig, create_app  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """An 80x80 crop of a real camera LR photo, a 48x48 one to cancel, a clean HR crop, a broken file."""
    folder = tmp_path_factory.mktemp("inputs")
    lr = sorted(need(DATA / "track1-valid" / "LR").glob("*.png"))
    hr = sorted(need(DATA / "track1-valid" / "HR").glob("*.png"))
    out = {"photo": folder / "photo.png", "big": folder / "big.png", "hr": folder / "clean.png",
           "broken": folder / "broken.png"}
    Image.open(lr[14]).convert("RGB").crop((30, 20, 110, 100)).save(out["photo"])
    Image.open(lr[4]).convert("RGB").crop((0, 0, 48, 48)).save(out["big"])
    Image.open(hr[4]).convert("RGB").crop((128, 128, 256, 256)).save(out["hr"])
    out["broken"].write_bytes(b"\x89PNG\r\n\x1a\n this is no picture")
    return out


@pytest.fixture
def server(tmp_path):
    from werkzeug.serving import make_server

    app = create_app(ServeConfig(workdir=str(tmp_path)))  # automatic tile: one tile for these small photos
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield app, app.extensions["ddnsr"].url(f"http://127.0.0.1:{httpd.server_port}/")  # with the token
    httpd.shutdown()
    app.extensions["ddnsr"].close()


@pytest.fixture
def browser(tmp_path):
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.downloads = downloads
    yield driver
    driver.quit()


def _job(driver, name: str):
    return driver.find_element(By.XPATH, f"//li[contains(@class,'job')][.//span[@class='name'][text()='{name}']]")


def _wait_state(driver, name: str, state: str, timeout: float = 120):
    WebDriverWait(driver, timeout, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        lambda d: _job(d, name).get_attribute("data-state") == state)
    return _job(driver, name)


def test_the_page_end_to_end(server, browser, files, tmp_path):
    from ddnsr.cli import main

    app, url = server
    started, release = gate_worker(app, "big.png")
    wait = WebDriverWait(browser, 60)
    browser.get(url)
    wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) > 1)
    Select(browser.find_element(By.ID, "model")).select_by_value("bundled:track1")
    assert "Speed: fast" in browser.find_element(By.ID, "model-note").text
    Select(browser.find_element(By.ID, "format")).select_by_value("png")

    # a real photo and a broken file in one pick
    browser.find_element(By.ID, "files").send_keys(f"{files['photo']}\n{files['broken']}")
    broken = _wait_state(browser, "broken.png", "failed", 60)
    assert "broken.png: cannot be read" in broken.find_element(By.CLASS_NAME, "error").text
    done = _wait_state(browser, "photo.png", "done")
    wait.until(lambda d: d.execute_script("return document.getElementById('after').naturalWidth") == 320)
    assert browser.find_element(By.ID, "viewer").is_displayed()

    # the download equals ddnsr upscale's output, byte for byte
    done.find_element(By.CSS_SELECTOR, "a.download").click()
    target = browser.downloads / "photo_x4.png"
    WebDriverWait(browser, 30).until(lambda d: target.exists() and not list(d.downloads.glob("*.crdownload")))
    cli = ["upscale", str(files["photo"]), "-o", str(tmp_path / "cli"), "--model", "track1", "-q"]
    assert main(cli) == 0  # no precision on either side: both take auto
    assert target.read_bytes() == (tmp_path / "cli" / "photo.png").read_bytes()

    # "Download all": fetched with the page's header, saved from a blob
    browser.find_element(By.ID, "zip").click()
    archive = browser.downloads / "ddnsr-results.zip"
    WebDriverWait(browser, 30).until(lambda d: archive.exists() and not list(d.downloads.glob("*.crdownload")))
    assert zipfile.ZipFile(archive).read("photo_x4.png") == target.read_bytes()

    # the slider moves the border between before and after; zoom goes to single pixels
    slider = browser.find_element(By.ID, "slider")
    from selenium.webdriver import ActionChains

    ActionChains(browser).click_and_hold(slider).move_by_offset(-slider.size["width"] // 4, 0).release().perform()
    value = float(slider.get_attribute("value"))
    assert value < 40
    clip = browser.find_element(By.ID, "before").value_of_css_property("clip-path")
    assert clip.replace(" ", "").startswith(f"inset(0px{100 - value:g}%") or f"{100 - value:g}%" in clip
    browser.find_element(By.CSS_SELECTOR, "[data-zoom='8']").click()
    assert browser.find_element(By.ID, "zoom-level").text == "800%"
    browser.find_element(By.CSS_SELECTOR, "[data-zoom='fit']").click()

    # the degradation view: clean HR -> D's LR next to a real LR
    browser.find_element(By.ID, "deg-hr").send_keys(str(files["hr"]))
    browser.find_element(By.ID, "deg-lr").send_keys(str(files["photo"]))
    browser.find_element(By.ID, "deg-run").click()
    wait.until(EC.visibility_of_element_located((By.ID, "deg-result")))
    wait.until(lambda d: d.execute_script("return document.getElementById('deg-img-out').naturalWidth") == 32)

    # a job that is running is cancelled from the page
    browser.find_element(By.ID, "files").send_keys(str(files["big"]))
    assert started.wait(60)
    _wait_state(browser, "big.png", "running", 30).find_element(By.CSS_SELECTOR, "button.cancel").click()
    jobs = app.extensions["ddnsr"].worker.jobs
    WebDriverWait(browser, 10).until(lambda d: any(j.name == "big.png" and j.cancel.is_set() for j in jobs.values()))
    release.set()
    cancelled = _wait_state(browser, "big.png", "cancelled", 60)
    assert not cancelled.find_elements(By.CSS_SELECTOR, "a.download")

    # the screenshot for the README
    browser.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.3)
    shot = tmp_path / "serve.png"
    browser.save_screenshot(str(shot))
    assert Image.open(shot).size[0] >= 1000
    if os.environ.get("DDNSR_SCREENSHOT_DIR"):
        folder = Path(os.environ["DDNSR_SCREENSHOT_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, folder / "serve.png")
