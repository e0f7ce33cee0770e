"""JSON text from orjson equals Python's json module's, byte for byte, for every value an export holds."""

import json
import random

import pytest

from lsflow.core.formats.json_text import compact_json, indented_json


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice([0.0, -0.0, 1e-4, 9.99e-5, 1.94e-05, 1e-7, 5e-324, 1e16, 1e300, 123.456, 0.1 + 0.2])
    if kind == 1:
        return rng.uniform(-1, 1) * 10 ** rng.randint(-9, 20)
    if kind == 2:
        return rng.choice([0, -1, 2**63 - 1, -(2**63), 2**64, 10**30, True, False, None])
    if kind == 3:
        return "".join(chr(rng.choice([rng.randrange(0x20), rng.randrange(0x20, 0x7f), rng.randrange(0xa0, 0x3000),
                                       0x2028, 0x7f])) for _ in range(rng.randrange(8)))
    if kind == 4:
        return rng.choice(["10.00001", "x2e-3", "2025-06-02T11:40:00.000000Z", "0.0000", "e-"])
    if kind == 5:
        return rng.randint(-10**6, 10**6)
    if kind == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{i}{random_value(rng, 3) if i % 2 else ''}": random_value(rng, depth + 1) for i in range(rng.randrange(4))}


@pytest.mark.parametrize("seed", range(20))
def test_bytes_equal_the_json_modules(seed):
    rng = random.Random(seed)
    for _ in range(300):
        value = random_value(rng)
        assert indented_json(value) == json.dumps(value, indent=2, ensure_ascii=False).encode()
        assert compact_json(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_small_floats_take_pythons_spelling():
    assert indented_json({"x": 1.94e-05}) == b'{\n  "x": 1.94e-05\n}'
    assert compact_json([1e-07, -3e-5, 0.0001]) == "[1e-07,-3e-05,0.0001]"
