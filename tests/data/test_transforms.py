import numpy as np

from stm.config import AugmentConfig
from stm.data.transforms import affine_about_centre, colour_jitter, crop_matrix, remap, tps_grid, warp


def square(size=(40, 60), box=(10, 20, 20, 30)):
    labels = np.zeros(size, dtype=np.uint8)
    y0, y1, x0, x1 = box
    labels[y0:y1, x0:x1] = 1
    image = np.zeros((*size, 3), dtype=np.uint8)
    image[labels == 1] = (255, 0, 0)
    return image, labels


def test_a_known_affine_moves_image_and_mask_together_where_expected():
    image, labels = square()
    matrix = affine_about_centre((40, 60), shift=(7, -3))
    out_image, out_labels = warp(image, labels, matrix, (40, 60))
    ys, xs = np.nonzero(out_labels)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (7, 16, 27, 36)
    assert np.array_equal(out_image[..., 0] > 127, out_labels == 1)
    turned = warp(image, labels, affine_about_centre((40, 60), rotation=90), (40, 60))[1]
    ys, xs = np.nonzero(turned)  # a 10x10 square turned by 90 degrees about the centre stays 10x10
    assert ys.max() - ys.min() == 9 and xs.max() - xs.min() == 9


def test_crop_matrix_covers_the_output_and_stays_inside_the_image():
    rng = np.random.default_rng(0)
    for _ in range(20):
        matrix = crop_matrix(rng, (100, 200), (32, 48), (0.5, 1.0))
        corners = np.linalg.inv(matrix) @ np.array([[0, 47, 0, 47], [0, 0, 31, 31], [1, 1, 1, 1]])
        assert corners[0].min() >= -1e-6 and corners[0].max() <= 200 and corners[1].max() <= 100


def test_thin_plate_warp_is_identity_without_jitter_and_keeps_alignment():
    image, labels = square()
    maps = tps_grid(np.random.default_rng(0), (40, 60), strength=0.0)
    same = remap(image, labels, maps)
    assert np.array_equal(same[1], labels)
    bent_image, bent_labels = remap(image, labels, tps_grid(np.random.default_rng(1), (40, 60), strength=0.1))
    assert not np.array_equal(bent_labels, labels)
    inside = bent_labels == 1
    assert (bent_image[inside, 0] > 127).mean() > 0.95 and (bent_image[~inside, 0] > 127).mean() < 0.05


def test_colour_jitter_keeps_the_image_shape_and_zero_is_identity():
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert colour_jitter(np.random.default_rng(0), image, 0.0) is image
    jittered = colour_jitter(np.random.default_rng(0), image, AugmentConfig().colour)
    assert jittered.shape == image.shape and jittered.dtype == np.uint8 and not np.array_equal(jittered, image)
