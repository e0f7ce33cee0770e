import numpy as np
import pytest
from label_studio_sdk.converter import brush
from pycocotools import mask as coco_mask

from lsflow.core.geometry.rle import RleError, brush_alpha, coco_rle, decode_brush_rle


def _stream(*fields: tuple[int, int]) -> list[int]:
    """Bytes from (value, bit width) fields written most significant bit first, zero-padded."""
    bits = "".join(f"{value:0{width}b}" for value, width in fields)
    bits += "0" * (-len(bits) % 8)
    return [int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)]


def _header(count: int, word: int = 8, sizes: tuple[int, ...] = (3, 4, 8, 16)) -> list[tuple[int, int]]:
    return [(count, 32), (word - 1, 5)] + [(size - 1, 4) for size in sizes]


@pytest.mark.parametrize("seed, shape, levels", [
    (1, (7, 5), 2), (2, (64, 48), 2), (3, (31, 17), 256), (4, (300, 400), 3),
])
def test_decodes_what_the_sdk_decodes_for_masks_the_sdk_encoded(seed, shape, levels):
    rng = np.random.default_rng(seed)
    mask = (rng.integers(0, levels, shape) * (255 // (levels - 1))).astype(np.uint8)
    mask[: shape[0] // 2, : shape[1] // 2] = 255  # long runs next to literal stretches
    rle = brush.mask2rle(mask)
    expected = brush.decode_rle(rle)
    decoded = decode_brush_rle(rle)
    assert decoded.dtype == np.uint8
    assert np.array_equal(decoded, expected)
    assert np.array_equal(brush_alpha(rle, shape[1], shape[0]), mask)


def test_runs_longer_than_the_widest_length_field_are_split_and_joined_back():
    mask = np.zeros((300, 500), dtype=np.uint8)  # 600 000 values: a run the 16-bit field cannot hold
    mask[-1, -1] = 255
    rle = brush.mask2rle(mask)
    assert np.array_equal(decode_brush_rle(rle), brush.decode_rle(rle))


def test_other_word_and_length_field_sizes_follow_the_header():
    # 4-bit words, length fields of 1, 2, 5 and 7 bits; a run of 3 x 9, literals 1 2 3, a run of 20 x 15.
    rle = _stream(*_header(26, word=4, sizes=(1, 2, 5, 7)),
                  (1, 1), (1, 2), (2, 2), (9, 4),
                  (0, 1), (0, 2), (1, 1), (1, 4), (2, 4),
                  (0, 1), (0, 2), (0, 1), (3, 4),
                  (1, 1), (2, 2), (19, 5), (15, 4))
    expected = brush.decode_rle(bytes(rle))
    assert list(expected) == [9, 9, 9, 1, 2, 3] + [15] * 20
    assert np.array_equal(decode_brush_rle(rle), expected)


def test_a_final_run_past_the_count_is_cut_as_the_sdk_cuts_it():
    rle = _stream(*_header(5), (1, 1), (0, 2), (7, 3), (200, 8))  # a run of 8 for a count of 5
    assert np.array_equal(decode_brush_rle(rle), brush.decode_rle(bytes(rle)))
    assert list(decode_brush_rle(rle)) == [200] * 5


@pytest.mark.parametrize("rle, reason", [
    (_stream((4, 32)), "too few for its header"),
    (_stream(*_header(10), (1, 1), (0, 2), (3, 3), (7, 8)), "ends before all 10 values are read"),
    (_stream(*_header(5), (0, 1), (0, 2), (4, 3), (1, 8), (2, 8)), "middle of the record that starts at value 0 of 5"),
    (_stream(*_header(3), (0, 1), (0, 2), (4, 3), (1, 8), (2, 8), (3, 8), (4, 8), (5, 8)), "beyond its count"),
    (_stream(*_header(2, word=16), (1, 1), (0, 2), (1, 3), (300, 16)), "16 bits"),
    ([1, 2, 300], "0–255"),
])
def test_malformed_bytes_raise_a_clear_error(rle, reason):
    with pytest.raises(RleError, match=reason):
        decode_brush_rle(rle)


def test_a_mask_of_another_size_than_its_image_is_refused():
    rle = brush.mask2rle(np.zeros((10, 20), dtype=np.uint8))
    with pytest.raises(RleError, match="RLE holds 800 values, but a 20x20 RGBA image has 1600"):
        brush_alpha(rle, 20, 20)


def test_coco_rle_keeps_holes_and_pycocotools_reads_it_back():
    mask = np.zeros((40, 60), dtype=bool)
    mask[5:35, 10:50] = True
    mask[15:25, 20:40] = False  # the hole a polygon outline would fill in
    encoded = coco_rle(mask)
    assert encoded["size"] == [40, 60]
    assert isinstance(encoded["counts"], str)
    decoded = coco_mask.decode({"size": encoded["size"], "counts": encoded["counts"].encode()})
    assert np.array_equal(decoded.astype(bool), mask)
    assert coco_mask.area({"size": encoded["size"], "counts": encoded["counts"].encode()}) == 30 * 40 - 10 * 20
