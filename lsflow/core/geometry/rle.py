"""Run-length codecs for masks: Label Studio's brush RLE (read) and COCO's RLE (write).

Label Studio stores a brush region as `@thi.ng/rle-pack` bytes of the RGBA canvas, flattened row by
row: a 32-bit value count, a 5-bit word size, four 4-bit run-length field sizes, then records of
`1 bit kind, 2 bits field choice, n bits length-1` followed by one word (a run) or `length` words
(literals). The SDK's reader builds a Python string one bit at a time; here the bits come from
`numpy.unpackbits`, the Python loop touches only record headers, and words are gathered in bulk.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_HEADER_BITS = 32 + 5 + 4 * 4
_ZERO = ord("0")
# Brush masks are RGBA bytes; wider words do not fit the uint8 mask the SDK returns either.
MAX_WORD_BITS = 8


class RleError(ValueError):
    """Bytes that are not a complete Label Studio brush RLE."""


def decode_brush_rle(rle: bytes | Sequence[int]) -> np.ndarray:
    """The flat uint8 array Label Studio encoded: the same values as
    `label_studio_sdk.converter.brush.decode_rle` for the same bytes."""
    try:
        data = np.frombuffer(bytes(rle), dtype=np.uint8)
    except (TypeError, ValueError) as error:
        raise RleError(f"RLE is not a list of bytes (0–255): {error}") from None
    bits = np.unpackbits(data)
    # b"0"/b"1" text: int(text[a:b], 2) reads a field without touching bits one at a time.
    text = (bits | _ZERO).tobytes()
    total_bits = len(text)
    if total_bits < _HEADER_BITS:
        raise RleError(f"RLE has {len(data)} bytes, too few for its header")
    count = int(text[0:32], 2)
    word = int(text[32:37], 2) + 1
    field_sizes = [int(text[37 + 4 * k: 41 + 4 * k], 2) + 1 for k in range(4)]
    if word > MAX_WORD_BITS:
        raise RleError(f"RLE words are {word} bits; brush masks use {MAX_WORD_BITS}-bit words")

    # One pass over the record headers: where each record's words start in the bit stream, how
    # many values it covers, and whether it repeats one word or lists its words. The loop body is
    # kept minimal (it runs once per record); a stream that ends early shows as a header that
    # cannot be read or a last record reaching past the end, both checked once.
    kinds = {f"{k:03b}".encode(): (k >= 4, field_sizes[k & 3]) for k in range(8)}
    is_run: list[bool] = []
    lengths: list[int] = []
    offsets: list[int] = []
    add_run, add_length, add_offset = is_run.append, lengths.append, offsets.append
    position, filled = _HEADER_BITS, 0
    try:
        while filled < count:
            run, size = kinds[text[position: position + 3]]
            position += 3
            length = int(text[position: position + size], 2) + 1
            position += size
            add_offset(position)
            position += word if run else word * length
            add_run(run)
            add_length(length)
            filled += length
    except (KeyError, ValueError):  # fewer than 3 header bits, or none of the length field, left
        raise RleError(f"RLE ends before all {count} values are read") from None
    if position > total_bits:
        raise RleError(f"RLE ends in the middle of the record that starts at value {filled - lengths[-1]} of {count}")
    if filled > count:
        if not is_run[-1]:
            raise RleError(f"RLE lists {filled - count} values beyond its count {count}")
        lengths[-1] -= filled - count  # a final run may overshoot; the SDK cuts it too

    runs = np.array(is_run, dtype=bool)
    spans = np.array(lengths, dtype=np.int64)
    starts = np.array(offsets, dtype=np.int64)
    # Every value gets the bit offset of the word it comes from: a run's one word repeated, or
    # a literal's consecutive words.
    words_per_record = np.where(runs, 1, spans)
    first_word = np.cumsum(words_per_record) - words_per_record
    word_record = np.repeat(np.arange(len(spans)), words_per_record)
    word_offsets = starts[word_record] + word * (np.arange(len(word_record)) - first_word[word_record])
    values = np.zeros(len(word_offsets), dtype=np.uint8)
    for bit in range(word):
        values = (values << 1) | bits[word_offsets + bit]
    repeats = np.where(runs[word_record], spans[word_record], 1)
    return np.repeat(values, repeats)


def brush_alpha(rle: bytes | Sequence[int], width: int, height: int) -> np.ndarray:
    """The region's mask as Label Studio's converter exports it: the RGBA canvas's alpha, (height, width)."""
    flat = decode_brush_rle(rle)
    expected = width * height * 4
    if flat.size != expected:
        raise RleError(
            f"RLE holds {flat.size} values, but a {width}x{height} RGBA image has {expected}"
        )
    return flat.reshape(height, width, 4)[:, :, 3]


def coco_rle(mask: np.ndarray) -> dict:
    """A binary (height, width) mask as COCO's compressed RLE, JSON-ready: holes survive, unlike polygons."""
    from pycocotools import mask as coco_mask  # imported here: it is only needed once masks exist

    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}
