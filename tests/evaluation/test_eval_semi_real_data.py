import csv

import numpy as np
from PIL import Image

from eval_semi import main
from stm.data.io import read_mask


def test_eval_semi_on_a_real_davis16_sequence_at_reduced_size(shared_data, tmp_path):
    """DAVIS 2016 layout and 0/255 masks as released, 6 frames of `bear` at a quarter of 480p."""
    source = shared_data / "davis16-train-sample"
    root = tmp_path / "davis16"
    for t in range(6):
        with Image.open(source / "JPEGImages" / "480p" / "bear" / f"{t:05d}.jpg") as image:
            frame = image.resize((214, 120), Image.BILINEAR)
        with Image.open(source / "Annotations" / "480p" / "bear" / f"{t:05d}.png") as image:
            mask = image.resize((214, 120), Image.NEAREST)
        (root / "JPEGImages" / "480p" / "bear").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / "480p" / "bear").mkdir(parents=True, exist_ok=True)
        frame.save(root / "JPEGImages" / "480p" / "bear" / f"{t:05d}.jpg")
        mask.save(root / "Annotations" / "480p" / "bear" / f"{t:05d}.png")
    out = tmp_path / "out"
    main(["--root", str(root), "--output", str(out), "--year", "2016", "--backbone", "resnet18", "--mem-every", "2"])
    pngs = sorted((out / "bear").glob("*.png"))
    assert len(pngs) == 6
    first = read_mask(pngs[0])
    assert first.shape == (120, 214) and np.array_equal(first, read_mask(root / "Annotations/480p/bear/00000.png"))
    rows = list(csv.reader((out / "global_results-val.csv").open()))
    assert rows[0][0] == "J&F-Mean" and 0 <= float(rows[1][0]) <= 1
    assert [r[0] for r in csv.reader((out / "per-sequence_results-val.csv").open())][1:] == ["bear_1"]
