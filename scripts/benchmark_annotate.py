"""How responsive the annotation tool is, measured in the page: the time from pressing "Forward" to
the first propagated frame drawn, and the frames per second of the whole propagation.

Serves a video with annotate's own code, gives frame 0 its mask (a polygon stroke along the outline
of --first-mask, as a person would click it), then drives headless Chromium (Debian's chromium and
chromedriver) to press "Forward" and reads the page's own timings. Run it under the CPU lock:

    flock /work/locks/cpu python scripts/benchmark_annotate.py --video DAVIS/JPEGImages/480p/bear \\
        --first-mask DAVIS/Annotations/480p/bear/00000.png --weights checkpoints/demo/latest.pth
"""

import argparse
import shutil
import tempfile
import time

import cv2
import numpy as np
import torch

from stm.app.launch import load_predictors, open_annotator, serving_in_thread
from stm.app.server import create_app
from stm.app.strokes import Stroke
from stm.cli import run
from stm.data.io import read_mask
from stm.errors import StmError
from stm.inference.working_size import describe_size, parse_size


def outline_polygon(mask: np.ndarray) -> tuple[tuple[float, float], ...]:
    """The largest object's outline as a polygon in normalised coordinates (corners 2 px apart)."""
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        raise StmError("the first mask has no object")
    corners = cv2.approxPolyDP(max(contours, key=cv2.contourArea), 2, True)[:, 0, :]
    height, width = mask.shape
    return tuple(((x + 0.5) / width, (y + 0.5) / height) for x, y in corners)


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver:
        raise StmError("chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(driver))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", required=True)
    parser.add_argument("--first-mask", required=True, help="a PNG mask of frame 0 (e.g. the DAVIS annotation)")
    parser.add_argument("--weights", help="checkpoint (none: random init of the official-size ResNet-50 model)")
    parser.add_argument("--size", type=parse_size, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--port", type=int, default=8799)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    semi, _ = load_predictors(args.weights, None, args.size, "cpu")
    mask = read_mask(args.first_mask)
    with tempfile.TemporaryDirectory(prefix="stm-bench-") as workspace:
        annotator = open_annotator(args.video, workspace, semi)
        if mask.shape != (annotator.workspace.height, annotator.workspace.width):
            raise StmError(f"{args.first_mask}: its size differs from the video's")
        annotator.add_object()
        annotator.stroke(Stroke("polygon", 0, 1, outline_polygon(mask)))
        with serving_in_thread(create_app(annotator), args.port) as url:
            driver = chromium()
            try:
                driver.get(url)
                while not driver.execute_script("return document.body.dataset.ready === 'true'"):
                    time.sleep(0.05)
                driver.find_element("id", "propagate-forward").click()
                while driver.execute_script("return window.stm.state.busy || !window.stm.state.timings.server"):
                    time.sleep(0.1)
                timings = driver.execute_script("return window.stm.state.timings")
            finally:
                driver.quit()
    server = timings["server"]
    if server["state"] != "done":
        raise StmError(f"the propagation ended {server['state']}: {server.get('error')}")
    frames = server["done"]
    first_page = (timings["firstShown"] - timings["clicked"]) / 1000
    whole_page = (timings["lastShown"] - timings["clicked"]) / 1000
    print(f"video {args.video}: {annotator.workspace.width}x{annotator.workspace.height}, {frames} frames propagated")
    print(
        f"weights {args.weights or 'random init (ResNet-50, official size)'}, working size {describe_size(semi.size)}"
    )
    print(f"{torch.get_num_threads()} torch threads")
    first_server = server["first_frame_seconds"]
    print(f"press -> first frame drawn in the page: {first_page:.2f} s (server: first frame done {first_server:.2f} s)")
    print(f"whole propagation: {whole_page:.1f} s in the page, {frames / whole_page:.2f} frames/s "
          f"(server: {server['seconds']:.1f} s, {frames / server['seconds']:.2f} frames/s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    run(main)
