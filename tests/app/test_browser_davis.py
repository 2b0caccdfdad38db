"""In headless Chromium on a real 480p DAVIS sequence (skips without ../shared/data): a polygon clicked
around the bear on frame 0, a propagation cancelled after a few frames, and the screenshot of the page
that the README shows (written to $STM_SCREENSHOT_DIR/annotate.png when that is set)."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from stm import STM
from stm.app.launch import open_annotator
from stm.app.server import create_app
from stm.data.io import read_mask
from stm.inference.predictor import VideoPredictor
from tests.app.browser import live_server, save_screenshot, start_chromium, wait_for
from tests.app.test_browser import open_page, shown

pytestmark = pytest.mark.browser


def test_polygon_on_a_davis_frame_then_cancel(shared_data, tmp_path):
    sequence = shared_data / "davis16-train-sample" / "JPEGImages" / "480p" / "bear"
    truth = read_mask(shared_data / "davis16-train-sample" / "Annotations" / "480p" / "bear" / "00000.png")
    torch.manual_seed(0)
    predictor = VideoPredictor(STM("semi", "resnet18"), size=240)
    annotator = open_annotator(sequence, tmp_path / "ws", semi=predictor)
    browser = start_chromium(1400, 900)
    try:
        with live_server(create_app(annotator)) as url:
            open_page(browser, url)
            from selenium.webdriver.common.action_chains import ActionChains

            # the person clicks the corners of the bear's outline, then closes the polygon with Enter
            contours, _ = cv2.findContours(truth.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            corners = cv2.approxPolyDP(max(contours, key=cv2.contourArea), 3, True)[:, 0, :]
            browser.find_element("css selector", '#tools button[data-tool="polygon"]').click()
            canvas = browser.find_element("id", "draw-canvas")
            box = canvas.rect
            scale = box["width"] / truth.shape[1]
            clicks = ActionChains(browser, duration=0)
            for x, y in corners:
                offset = (x + 0.5) * scale - box["width"] / 2, (y + 0.5) * scale - box["height"] / 2
                clicks.move_to_element_with_offset(canvas, round(offset[0]), round(offset[1])).click()
            clicks.send_keys("\ue007").perform()
            wait_for(lambda: shown(browser, 0, truth.shape).any(), what="the polygon on frame 0")
            painted = read_mask(tmp_path / "ws" / "masks" / "00000.png")
            iou = np.logical_and(painted, truth).sum() / np.logical_or(painted, truth).sum()
            assert iou > 0.9  # the clicks landed on the outline, at the video's scale

            # propagate, then cancel after a few frames: they are kept, the others never written
            browser.find_element("id", "propagate-forward").click()
            wait_for(lambda: len(list((tmp_path / "ws" / "masks").glob("*.png"))) >= 3, what="three frames")
            browser.find_element("id", "cancel").click()
            message = wait_for(lambda: browser.find_element("id", "message").text.startswith("Cancelled")
                               and browser.find_element("id", "message").text)  # fmt: skip
            done = int(message.split()[2])
            assert 2 <= done < 81
            masks = sorted(int(p.stem) for p in (tmp_path / "ws" / "masks").glob("*.png"))
            assert masks == list(range(done + 1))

            # back to the annotated frame for the picture
            browser.execute_script("window.stm.show(0)")
            shown(browser, 0, truth.shape)
            folder = Path(os.environ.get("STM_SCREENSHOT_DIR", tmp_path))
            save_screenshot(browser, folder / "annotate.png")
            assert (folder / "annotate.png").stat().st_size < 500_000
    finally:
        browser.quit()
