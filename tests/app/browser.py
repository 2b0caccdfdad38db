"""Headless Chromium (Debian's chromium + chromium-driver, through Selenium) and a live server for the
browser tests. Nothing is downloaded: Selenium is given both binaries, so its driver manager never runs.

Where no browser can be had the tests skip with the reason; with STM_REQUIRE_BROWSER=1 (CI) they fail
instead, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import socket
import time

import pytest

from stm.app.launch import serving_in_thread

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def browser_binaries() -> tuple[str, str] | str:
    """(browser, driver) paths, or the reason there are none."""
    browser = os.environ.get("STM_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM)), None)
    driver = os.environ.get("STM_CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver:
        missing = " and ".join(name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path)
        return f"no {missing} on PATH (Debian: apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return browser, driver


def start_chromium(width: int = 1280, height: int = 800):
    """A headless Chromium session, or a skip (a failure under STM_REQUIRE_BROWSER=1) with the reason."""
    found = browser_binaries()
    if isinstance(found, str):
        if os.environ.get("STM_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests required but {found}")
        pytest.skip(found)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(argument)
    try:
        return webdriver.Chrome(options=options, service=Service(found[1]))
    except Exception as exc:  # a browser that does not start is "no browser" here
        reason = f"Chromium did not start: {str(exc).strip().splitlines()[0]}"
        if os.environ.get("STM_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def live_server(app):
    """Serves the Starlette app with uvicorn on a free local port in a thread; yields its URL."""
    return serving_in_thread(app, free_port())


def wait_for(condition, timeout: float = 60, what: str = "the page"):
    """Polls condition() until it returns something true; fails the test naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def save_screenshot(driver, path, width: int = 1000) -> None:
    """The page as a small PNG (for docs/): scaled to `width` and reduced to 256 colours."""
    from io import BytesIO

    from PIL import Image

    image = Image.open(BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(colors=256, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)
