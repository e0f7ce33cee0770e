"""Bounded fuzzing of the two readers that take files from users: the export reader and the label config.

Each input either reads (and then exactly as a reference JSON/XML parser reads it) or fails with the
reader's own error and a message; never another exception type, never a hang, never a silently dropped
task. Deterministic and CI-sized (lsflow_tests/hypothesis_settings.py; `LSFLOW_FUZZ_SCALE=50` for a long
run). Inputs that once broke a reader live in fuzz_regressions/ and are replayed first.
"""

from __future__ import annotations

import json
import math
import re
import resource
import signal
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lsflow.core.model.label_config import ClassList, LabelConfig, LabelConfigError
from lsflow.core.model.task import ExportFormatError, Task
from lsflow.sources.export_file import iter_export_entries, iter_export_tasks
from lsflow_tests.hypothesis_settings import bounded
from lsflow_tests.paths import REPO_ROOT

SAMPLES = sorted((REPO_ROOT / "data" / "sample" / "projects").glob("*/"))
SAMPLE_EXPORTS = [(p / "export.json").read_bytes() for p in SAMPLES]
SAMPLE_CONFIGS = [(p / "label_config.xml").read_text(encoding="utf-8") for p in SAMPLES]
REGRESSIONS = Path(__file__).parent / "fuzz_regressions"
SECONDS_PER_INPUT = 20  # a hang is a failure, not a stuck CI job
MEMORY_PER_INPUT = 512 << 20  # growth of the process's peak resident memory one input may cause


class Hung(Exception):
    pass


@contextmanager
def time_boxed(seconds: int = SECONDS_PER_INPUT):
    def alarm(signum, frame):
        raise Hung(f"reading did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def read_export(data: bytes) -> tuple[list[dict], ExportFormatError | None]:
    """The tasks the reader gives for `data` (as raw dicts), and the error it ended with, if any.
    Read both ways a caller reads: tasks, and pipeline entries (whose tasks are parsed lazily)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.json"
        path.write_bytes(data)
        results = []
        for read in (lambda: (t.raw for t in iter_export_tasks(path)),
                     lambda: (e.parsed().raw for e in iter_export_entries(path, "image"))):
            tasks: list[dict] = []
            error = None
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            with time_boxed():
                try:
                    tasks.extend(read())
                except ExportFormatError as failure:
                    error = failure
            grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
            assert grown < MEMORY_PER_INPUT, f"reading {len(data)} bytes grew memory by {grown >> 20} MiB"
            if error is not None:
                assert str(error), "an error without a message"
                assert error.__class__ is ExportFormatError
            results.append((tasks, error))
        (tasks, error), (entry_tasks, entry_error) = results
        assert entry_tasks == tasks and str(entry_error) == str(error)  # both ways read the same
        return tasks, error


def reference(data: bytes):
    """What Python's json module reads, or None when it refuses the bytes."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def has_non_finite(value) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(has_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(has_non_finite(v) for v in value.values())
    return False


def any_scalar(value, test) -> bool:
    """Whether `test` holds for a scalar anywhere in a JSON value (keys included)."""
    if isinstance(value, list):
        return any(any_scalar(v, test) for v in value)
    if isinstance(value, dict):
        return any(any_scalar(k, test) or any_scalar(v, test) for k, v in value.items())
    return test(value)


def has_wide_integer(value) -> bool:
    """Integers beyond 64 bits (signed): refused on purpose (never silently read as floats)."""
    # ijson's yajl reads signed 64-bit integers.
    return any_scalar(value, lambda v: isinstance(v, int) and not isinstance(v, bool) and not -(2**63) <= v < 2**63)


def has_lone_surrogate(value) -> bool:
    return any_scalar(value, lambda v: isinstance(v, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in v))


def is_task(value) -> bool:
    """What the task model accepts (its own properties: lsflow_tests/core/geometry/test_properties.py)."""
    try:
        Task.from_dict(value)
    except ExportFormatError:
        return False
    return True


def check_export(data: bytes) -> None:
    """The reader's contract on any bytes."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))  # json.loads and == recurse into nested values
    try:
        _check_export(data)
    finally:
        sys.setrecursionlimit(limit)


def _check_export(data: bytes) -> None:
    tasks, error = read_export(data)
    expected = reference(data)
    if expected is None:
        # Not JSON: it may give the tasks before the damage, never finish as if the file were whole.
        assert error is not None, "bytes json refuses were read without an error"
        return
    if has_wide_integer(expected) or has_non_finite(expected) or has_lone_surrogate(expected):
        # Numbers beyond 64 bits, NaN/Infinity: refused on purpose. Lone surrogates are not text (UTF-8
        # cannot hold them; Label Studio's Postgres refuses them): no promise beyond not crashing.
        return
    items = expected if isinstance(expected, list) else [expected] if isinstance(expected, dict) else None
    if items is None or data.startswith(b"\xef\xbb\xbf"):  # json.loads skips a UTF-8 BOM; Label Studio and lsflow refuse it
        assert error is not None and "does not start with" in str(error)
        return
    good = 0
    while good < len(items) and is_task(items[good]):
        good += 1
    assert tasks == items[:good], "tasks read differ from the file's (dropped, changed or invented)"
    if good == len(items):
        assert error is None, f"a well-formed export was refused: {error}"
    else:
        assert error is not None, "an item that is not a task was skipped silently"
        bad = items[good]
        if isinstance(bad, dict) and bad.get("id") is not None:
            assert f"task {bad['id']}" in str(error)


# --- the export reader ------------------------------------------------------------------------------

def regression_inputs() -> list[Path]:
    return sorted(REGRESSIONS.glob("*.json"))


@pytest.mark.parametrize("path", regression_inputs(), ids=lambda p: p.name)
def test_inputs_that_once_broke_the_export_reader(path):
    check_export(path.read_bytes())


@bounded(150)
@given(st.binary(max_size=400))
@example(b"")
@example(b"   \n")
@example(b"\xef\xbb\xbf[]")
@example(b"[" * 25_000)  # 25 kB that took ijson.items 1.5 GB (it keeps every open container's prefix)
def test_random_bytes(data):
    check_export(data)


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=10))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)), max_leaves=20)
tasks = st.fixed_dictionaries({"id": st.integers(1, 2**40), "data": st.dictionaries(st.text(max_size=5), json_values,
                                                                                    max_size=3)},
                              optional={"annotations": st.lists(st.fixed_dictionaries(
                                  {"id": st.integers(1, 99), "result": st.lists(st.fixed_dictionaries(
                                      {"type": st.sampled_from(["rectanglelabels", "choices", "relation"]),
                                       "value": st.dictionaries(st.text(max_size=3), json_values, max_size=3)},
                                      optional={"original_width": json_scalars, "original_height": json_scalars}),
                                      max_size=3)}), max_size=2)})
items = st.one_of(tasks, tasks, tasks, json_values)


@st.composite
def serialized(draw, values):
    """`values` as JSON written as exporters and editors write it: compact or indented, ASCII escapes or UTF-8."""
    value = draw(values)
    indent = draw(st.sampled_from([None, 0, 1, 2, "\t"]))
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]))
    text = json.dumps(value, indent=indent, separators=separators if indent is None else None,
                      ensure_ascii=draw(st.booleans()))
    return draw(st.sampled_from(["", " ", "\n\t "])) + text + draw(st.sampled_from(["", "\n", " \r\n"]))


@bounded(200)
@given(serialized(st.lists(items, max_size=6)))
@example('[{"id": 1, "data": {"n": 12345678901234567890}}]')  # 20 digits: ijson's job, refused beyond 64 bits
@example('[{"id": 1, "data": {"t": "\\u00e9\\ud83d\\ude00 \\"\\\\\\"[{"}}]')  # escapes, quotes and brackets in strings
@example('[{"id": 1, "data": {"x": ' + "[" * 3000 + "]" * 3000 + "}}]")  # deeper than orjson reads
@example('[{"id": 1, "data": {}}, 5, {"id": 2, "data": {}}]')
@example('{"id": 9, "data": {"a": [1, 2]}}')  # a single task, as Label Studio's converter accepts
def test_well_formed_exports_read_every_task_exactly(text):
    check_export(text.encode("utf-8"))


@st.composite
def damaged_samples(draw):
    """A real export truncated, with a range cut out, a range repeated, bytes overwritten or inserted, or
    one structural byte dropped."""
    data = bytearray(draw(st.sampled_from(SAMPLE_EXPORTS)))
    action = draw(st.sampled_from(["truncate", "cut", "repeat", "overwrite", "insert", "drop_structural"]))
    if action == "drop_structural":  # one comma, colon, quote or bracket gone: the damage a reader must see
        between_tasks = [m.start() + 1 for m in re.finditer(rb'\}\s*,\s*\{"id"', data)]
        structural = [i for i, byte in enumerate(data) if byte in b',:"{}[]']
        positions = between_tasks if between_tasks and draw(st.booleans()) else structural
        position = draw(st.sampled_from(positions))
        return bytes(data[:position] + data[position + 1:])
    start = draw(st.integers(0, len(data)))
    end = draw(st.integers(start, min(len(data), start + 200)))
    if action == "truncate":
        return bytes(data[:start])
    if action == "cut":
        return bytes(data[:start] + data[end:])
    if action == "repeat":
        return bytes(data[:end] + data[start:end] + data[end:])
    noise = draw(st.one_of(st.binary(min_size=1, max_size=8),
                           st.sampled_from([b"{", b"}", b"[", b"]", b'"', b"\\", b",", b":", b"\\u", b"1e999",
                                            b"99999999999999999999", b"\x00", b"\xff", b"NaN"])))
    if action == "overwrite":
        return bytes(data[:start] + noise + data[start + len(noise):])
    return bytes(data[:start] + noise + data[start:])


@bounded(250)
@given(damaged_samples())
@example(b'[{"id": 1, "data": {}} {"id": 2, "data": {}}]')  # no comma between tasks
@example(b'[{"id": 1, "data": {}},, {"id": 2, "data": {}}]')
@example(b'[{"id": 1, "data": {}}, {"id": 2, "data": {}},]')
def test_damaged_real_exports(data):
    check_export(data)


@pytest.mark.parametrize("index", range(len(SAMPLE_EXPORTS)))
def test_the_sample_exports_read_whole(index):
    tasks, error = read_export(SAMPLE_EXPORTS[index])
    assert error is None and tasks == json.loads(SAMPLE_EXPORTS[index]) and tasks


# --- the label config parser ----------------------------------------------------------------------

def check_config(text: str) -> None:
    with time_boxed():
        try:
            config = LabelConfig.parse(text)
        except LabelConfigError as error:
            assert str(error) and error.__class__ is LabelConfigError
            return
        try:
            classes = config.classes()
        except LabelConfigError as error:  # two labels asking for one category
            assert "category" in str(error)
            classes = None
        order = config.keypoint_order()
    assert all(c.name and c.to_names for c in config.controls)
    if classes is not None:
        assert isinstance(classes, ClassList)
        ids = [class_id for class_id, _ in classes.names_by_id]
        assert len(set(ids)) == len(ids) and len(set(classes.names)) == len(classes.names)
    assert len(set(order)) == len(order)


@st.composite
def damaged_configs(draw):
    text = draw(st.sampled_from(SAMPLE_CONFIGS))
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 40)))
        noise = draw(st.one_of(st.text(max_size=6), st.sampled_from(
            ["<", ">", "/>", '"', "&", "&amp;", "&#0;", "<!--", "-->", "<![CDATA[", ' category="x"',
             ' category="-3"', ' category="1"', ' model_index="1e3"', ' toName=","', ' name=""', "<Label value='a'/>",
             '<!DOCTYPE v [<!ENTITY a "aaaaaaaaaa">]>', "\x00", "\ud800"])))
        text = text[:start] + draw(st.sampled_from(["", noise])) + (text[start:end] if draw(st.booleans()) else "") + \
            text[end:]
    return text


@bounded(300)
@given(st.one_of(damaged_configs(), st.text(max_size=200)))
@example('<?xml version="1.0" encoding="UTF-16"?><View/>')
@example("\ud800<View/>")  # found: UnicodeEncodeError (a config from the API's JSON may hold a lone surrogate)
@example("<View><Image name='i' value='$image'/><Labels name='l' toName='i'>"
         "<Label value='a' category='1'/><Label value='b' category='1'/></Labels></View>")
@example("<View><Labels name='l' toName='i'><Label value='a' category='" + "9" * 5000 + "'/></Labels></View>")
@example('<!DOCTYPE v [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
         '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
         "<View><Labels name='l' toName='i'><Label value='&d;'/></Labels></View>")
def test_any_label_config_parses_or_raises_label_config_error(text):
    check_config(text)


@pytest.mark.parametrize("index", range(len(SAMPLE_CONFIGS)))
def test_the_sample_label_configs_parse(index):
    config = LabelConfig.parse(SAMPLE_CONFIGS[index])
    assert config.controls and config.objects


@bounded(150)
@given(st.lists(st.tuples(st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=6),
                          st.one_of(st.none(), st.integers(0, 20))), min_size=1, max_size=10))
def test_generated_label_configs_number_classes_in_config_order_honouring_category(labels):
    body = "".join(f'<Label value="{value}"' + (f' category="{category}"' if category is not None else "") + "/>"
                   for value, category in labels)
    text = f'<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">{body}' \
           "</RectangleLabels></View>"
    chosen: dict[str, int] = {}
    for value, category in labels:
        if category is not None and value not in chosen:
            if category in chosen.values():
                with pytest.raises(LabelConfigError, match=f"category {category}"):
                    LabelConfig.parse(text).classes()
                return
            chosen[value] = category
    classes = LabelConfig.parse(text).classes()
    assert set(classes.names) == {value for value, _ in labels}
    assert all(classes.ids[value] == category for value, category in chosen.items())
    free = [classes.ids[value] for value in dict.fromkeys(v for v, _ in labels) if value not in chosen]
    assert free == sorted(free) and not set(free) & set(chosen.values())  # the rest fill free ids in config order
