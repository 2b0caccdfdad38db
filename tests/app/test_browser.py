"""End to end in headless Chromium: a person paints frame 0 with the mouse, propagates, looks at a later
frame, and comes back later; the log of it replays to the same masks.

The model is a small random-init STM: these tests are about the tool (what is drawn where, what is
saved, what the page shows), not about the quality of the masks.
"""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stm import STM
from stm.app.annotator import Annotator
from stm.app.launch import open_annotator
from stm.app.replay import replay
from stm.app.server import create_app
from stm.app.workspace import Workspace, read_log
from stm.data.io import read_mask, write_frame
from stm.data.synthetic import SyntheticSpec, render_video
from stm.inference.predictor import VideoPredictor
from tests.app.browser import live_server, start_chromium, wait_for

pytestmark = pytest.mark.browser

SPEC = SyntheticSpec(height=96, width=128, min_frames=8, max_frames=8, min_objects=1, max_objects=1)


@pytest.fixture(scope="module")
def browser():
    driver = start_chromium()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    return VideoPredictor(STM("semi", "resnet18"))


@pytest.fixture
def clip(tmp_path):
    """A generated video as a folder of frames, and its true masks."""
    frames, labels = render_video(np.random.default_rng(5), SPEC)
    for index, frame in enumerate(frames):
        write_frame(tmp_path / "clip" / f"{index:05d}.jpg", frame, quality=100)
    return tmp_path / "clip", labels


def open_page(driver, url):
    driver.get(url)
    wait_for(lambda: driver.execute_script("return document.body.dataset.ready === 'true'"), what="the page to load")


def shown(driver, index, shape=(SPEC.height, SPEC.width)):
    """Waits until the page shows frame `index` (image and mask) and returns its mask as the page has it."""
    wait_for(lambda: driver.execute_script("return window.stm.state.shown") == index, what=f"frame {index}")
    flat = driver.execute_script("return Array.from(window.stm.state.currentLabels)")
    return np.array(flat, np.uint8).reshape(shape)


def drawn_mask_pixels(driver) -> tuple[int, list[int]]:
    """How many pixels of the mask layer are coloured, and the colour of the first one: what a person sees."""
    return driver.execute_script(
        """
        const canvas = document.getElementById('mask-canvas');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let count = 0, colour = null;
        for (let i = 0; i < data.length; i += 4) {
          if (data[i + 3] === 0) continue;
          count++;
          if (!colour && data[i + 3] === 255) colour = [data[i], data[i + 1], data[i + 2]];
        }
        return [count, colour];
        """
    )


def keys(driver, key: str, control: bool = False):
    """Presses a key (with Ctrl) on the page, as a person at the keyboard."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    actions = ActionChains(driver)
    if control:
        actions.key_down(Keys.CONTROL).send_keys(key).key_up(Keys.CONTROL).perform()
    else:
        actions.send_keys(key).perform()


def paint(driver, points, width_px: int):
    """Drags the mouse over `points` (video pixels) on the drawing canvas with the brush at `width_px`."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver.execute_script(f"document.getElementById('size').value = {width_px};"
                          "document.getElementById('size').dispatchEvent(new Event('input'))")  # fmt: skip
    canvas = driver.find_element(By.ID, "draw-canvas")
    box = canvas.rect
    scale = box["width"] / SPEC.width

    def offset(point):  # Selenium offsets are from the element's centre, in CSS pixels
        x, y = point
        return round(x * scale - box["width"] / 2), round(y * scale - box["height"] / 2)

    actions = ActionChains(driver, duration=10)
    actions.move_to_element_with_offset(canvas, *offset(points[0])).click_and_hold()
    for previous, point in zip(points, points[1:], strict=False):
        (x0, y0), (x1, y1) = offset(previous), offset(point)
        actions.move_by_offset(x1 - x0, y1 - y0)
    actions.release().perform()


PLAY_VIDEO = """
const [src, done] = arguments;
const video = document.createElement("video");
video.muted = true;
video.addEventListener("loadeddata", () => done(
    {width: video.videoWidth, height: video.videoHeight, seconds: video.duration, error: null}));
video.addEventListener("error", () => done({error: video.error ? video.error.message || video.error.code : "?"}));
video.src = src;
"""  # a browser that cannot decode the file reports an error instead of its first frame


def test_paint_propagate_look_replay_and_reload(browser, predictor, clip, tmp_path):
    folder, truth = clip
    workspace = tmp_path / "ws"
    annotator = open_annotator(folder, workspace, semi=predictor)
    with live_server(create_app(annotator)) as url:
        open_page(browser, url)
        assert not shown(browser, 0).any()
        browser.find_element("id", "propagate-forward").click()  # nothing to propagate yet: one message
        message = wait_for(lambda: browser.find_element("id", "message").text, what="a message")
        assert message == "frame 0 has no object to propagate: paint one first"
        assert browser.find_element("id", "message").get_attribute("class") == "error"

        # paint a horizontal stroke through the object's middle on frame 0, with the mouse
        rows, cols = np.nonzero(truth[0])
        y = int(np.median(rows))
        left, right = int(cols.min()) + 3, int(cols.max()) - 3
        paint(browser, [(left, y), ((left + right) // 2, y), (right, y)], width_px=6)
        wait_for(lambda: shown(browser, 0).any(), what="the stroke on frame 0")
        labels = shown(browser, 0)
        painted = read_mask(workspace / "masks" / "00000.png")
        assert np.array_equal(labels, painted)  # the page shows what is on disk
        prows, pcols = np.nonzero(painted)
        # where the mouse went, give or take the brush radius and a pixel of CSS rounding
        assert abs(int(np.median(prows)) - y) <= 1
        assert abs(int(pcols.min()) - (left - 3)) <= 2 and abs(int(pcols.max()) - (right + 2)) <= 2
        assert 4 <= len(np.unique(prows)) <= 8
        assert browser.find_elements("css selector", '#marks .mark.annotated[data-frame="0"]')

        # Ctrl+Z takes the stroke back, Ctrl+Y brings it again
        keys(browser, "z", control=True)
        wait_for(lambda: not shown(browser, 0).any(), what="the undo")
        assert not browser.find_elements("css selector", "#marks .mark.annotated")
        keys(browser, "y", control=True)
        wait_for(lambda: np.array_equal(shown(browser, 0), painted), what="the redo")

        # propagate forward and wait for the end
        browser.find_element("id", "propagate-forward").click()
        wait_for(lambda: browser.find_element("id", "message").text.startswith("Done"), what="the propagation")
        assert browser.find_element("id", "progress-text").text.startswith(f"{SPEC.max_frames - 1} / ")
        masks = sorted(p.name for p in (workspace / "masks").glob("*.png"))
        assert masks == [f"{i:05d}.png" for i in range(SPEC.max_frames)]

        # a later frame shows the object: the page's mask layer is that frame's PNG, in the object's colour
        last = SPEC.max_frames - 1
        body = browser.find_element("tag name", "body")
        for _ in range(last):
            body.send_keys("\ue014")  # arrow right
        labels = shown(browser, last)
        on_disk = read_mask(workspace / "masks" / f"{last:05d}.png")
        assert np.array_equal(labels, on_disk) and (on_disk == 1).any()
        count, colour = drawn_mask_pixels(browser)
        assert count == int((on_disk == 1).sum()) and colour == [128, 0, 0]

        # the log replays to the same masks, through the same annotator code, on a fresh workspace
        replayed = Workspace(tmp_path / "replay", "clip", SPEC.max_frames, SPEC.height, SPEC.width)
        steps = list(replay(read_log(workspace / "interactions.jsonl"),
                            lambda: Annotator(replayed, annotator.frames, annotator.source, predictor)))  # fmt: skip
        assert [s.entry["action"] for s in steps] == ["open", "add_object", "stroke", "undo", "redo", "propagate"]
        for index in range(SPEC.max_frames):
            assert np.array_equal(replayed.labels(index), read_mask(workspace / "masks" / f"{index:05d}.png"))

        # export from the page; the overlay video plays in this browser, at the video's rate
        browser.find_element("id", "export").click()
        link = wait_for(lambda: browser.find_elements("css selector", '#export-links a[download="overlay.mp4"]'),
                        what="the export links")[0]  # fmt: skip
        played = browser.execute_async_script(PLAY_VIDEO, link.get_attribute("href"))
        assert played["error"] is None and (played["width"], played["height"]) == (SPEC.width, SPEC.height)
        assert played["seconds"] == pytest.approx(SPEC.max_frames / 24, abs=1e-3)  # a folder of frames: 24 fps

        screenshot = Path(os.environ.get("STM_SCREENSHOT_DIR", tmp_path)) / "annotate-generated.png"
        browser.save_screenshot(str(screenshot))
        assert Image.open(screenshot).size[0] == 1280

        # a reload restores the session; space plays it
        browser.refresh()
        open_page(browser, url)
        assert np.array_equal(shown(browser, 0), painted)
        keys(browser, " ")
        wait_for(lambda: browser.execute_script("return window.stm.state.shown") == last, what="playback")
        wait_for(lambda: browser.execute_script("return !window.stm.state.playing"), what="playback to stop")
        assert len(browser.find_elements("css selector", "#objects li")) == 1
        assert browser.find_elements("css selector", '#marks .mark.annotated[data-frame="0"]')

    # so does starting the tool again on the same workspace
    reopened = open_annotator(folder, workspace, semi=predictor)
    with live_server(create_app(reopened)) as url:
        open_page(browser, url)
        assert np.array_equal(shown(browser, 0), painted)
        assert browser.find_element("id", "undo").get_attribute("disabled")  # undo history is per session
        for _ in range(last):
            browser.find_element("tag name", "body").send_keys("\ue014")
        assert np.array_equal(shown(browser, last), on_disk)


def test_objects_are_added_selected_recoloured_and_deleted_in_the_page(browser, clip, tmp_path):
    folder, _ = clip
    annotator = open_annotator(folder, tmp_path / "ws")
    with live_server(create_app(annotator)) as url:
        open_page(browser, url)
        assert len(browser.find_elements("css selector", "#objects li")) == 1  # a first object to paint with
        browser.find_element("id", "add-object").click()
        wait_for(lambda: len(browser.find_elements("css selector", "#objects li")) == 2, what="a second object")
        assert browser.execute_script("return window.stm.state.object") == 2  # the new one is selected
        browser.find_element("css selector", '#objects li[data-id="1"] .name').click()
        assert browser.execute_script("return window.stm.state.object") == 1
        keys(browser, "2")
        assert browser.execute_script("return window.stm.state.object") == 2

        paint(browser, [(20, 20), (60, 20)], width_px=8)
        wait_for(lambda: (shown(browser, 0) == 2).any(), what="object 2 painted")
        browser.execute_script(
            "const input = document.querySelector('#objects li[data-id=\"2\"] input[type=color]');"
            "input.value = '#00ffff'; input.dispatchEvent(new Event('change'));"
        )
        wait_for(lambda: drawn_mask_pixels(browser)[1] == [0, 255, 255], what="the new colour drawn")
        assert annotator.workspace.objects[2].colour == "#00ffff"  # and saved

        browser.find_element("css selector", '#objects li[data-id="2"] .delete').click()
        browser.switch_to.alert.accept()  # "Delete Object 2 from every frame?"
        wait_for(lambda: len(browser.find_elements("css selector", "#objects li")) == 1, what="the deletion")
        assert not shown(browser, 0).any() and list(annotator.workspace.objects) == [1]


def test_scribbles_with_an_interactive_model(browser, clip, tmp_path):
    folder, truth = clip
    torch.manual_seed(0)
    annotator = open_annotator(folder, tmp_path / "ws", interactive=VideoPredictor(STM("interactive", "resnet18")))
    with live_server(create_app(annotator)) as url:
        open_page(browser, url)
        assert browser.find_element("id", "propagate-forward").get_attribute("disabled")  # no propagation model
        positive = browser.find_element("css selector", '#tools button[data-tool="positive"]')
        assert positive.is_displayed()
        positive.click()
        rows, cols = np.nonzero(truth[0])
        y = int(np.median(rows))
        paint(browser, [(int(cols.min()) + 2, y), (int(cols.max()) - 2, y)], width_px=3)
        wait_for(lambda: browser.find_element("id", "message").text.startswith("Done"), what="the re-segmentation")
        assert browser.find_elements("css selector", '#marks .mark.scribbled[data-frame="0"]')
        assert sorted(p.name for p in (tmp_path / "ws" / "masks").glob("*.png")) == [
            f"{i:05d}.png" for i in range(SPEC.max_frames)
        ]
        entry = read_log(tmp_path / "ws" / "interactions.jsonl")[-1]
        assert (entry["action"], entry["tool"], entry["frame"]) == ("stroke", "positive", 0)
