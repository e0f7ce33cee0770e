"""Labelled text spans placed on tokens, the way Label Studio's CONLL2003 export tokenizes text.

Label Studio tokenizes with NLTK's Treebank tokenizer, to which its converter adds `/` as a
punctuation mark; `LabelStudioTokenizer` is that tokenizer (a subclass, so NLTK's own class is left
as it is). A span tags every token it overlaps by at least one character. CoNLL can give a token one
label only, so a span whose tokens overlap an earlier span's (nested or crossing) is rejected with a
reason instead of being cut short or lost, as Label Studio's export does.

Offsets are Python string indices (Unicode code points), which is what Label Studio stores.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any

from lsflow.core.model.task import Region


@functools.cache
def label_studio_tokenizer():
    """NLTK's Treebank tokenizer with Label Studio's punctuation; NLTK is imported on first use
    because it costs 0.3 s, which every run of the command line would otherwise pay."""
    from nltk.tokenize.treebank import TreebankWordTokenizer

    class LabelStudioTokenizer(TreebankWordTokenizer):
        PUNCTUATION = [
            (re.compile(r"([:,])([^\d])"), r" \1 \2"),
            (re.compile(r"([:,])$"), r" \1 "),
            (re.compile(r"\.\.\."), r" ... "),
            (re.compile(r"[;@#$/%&]"), r" \g<0> "),  # Label Studio's addition: '/'
            (re.compile(r'([^\.])(\.)([\]\)}>"\']*)\s*$'), r"\1 \2\3 "),
            (re.compile(r"[?!]"), r" \g<0> "),
            (re.compile(r"([^'])' "), r"\1 ' "),
        ]

    return LabelStudioTokenizer()


class TokenizeError(ValueError):
    """NLTK could not align its tokens with the text (Label Studio's export fails on such text too)."""


def tokenize(text: str) -> list[tuple[int, int]]:
    """Token character ranges `[start, end)` in text order."""
    try:
        return list(label_studio_tokenizer().span_tokenize(text))
    except ValueError as error:
        raise TokenizeError(f"the text cannot be tokenized as Label Studio does ({error})") from None


@dataclass(frozen=True, slots=True)
class TokenSpan:
    """A labelled span as a run of tokens `first..last` (inclusive)."""

    region: Region
    label: str
    first: int
    last: int


def span_problem(region: Region, text: str) -> str | None:
    """Why a `labels` region cannot be placed on `text`, or None when it can."""
    start, end = region.value.get("start"), region.value.get("end")
    if not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool) or isinstance(end, bool):
        return "span has no whole-number start/end offsets"
    if not 0 <= start < end <= len(text):
        return "span offsets are empty or outside the text"
    if not region.labels:
        return "region has no label"
    quoted = region.value.get("text")
    if isinstance(quoted, str) and quoted != text[start:end]:
        return "span text differs from the task text at its offsets"
    return None


def place_spans(
    regions: list[Region], text: str, tokens: list[tuple[int, int]]
) -> tuple[list[TokenSpan], list[tuple[Region, str]]]:
    """(spans placed on tokens in text order, [(region rejected, why)]).

    Spans are taken in order of their start offset (ties in result order), as Label Studio does; a
    span sharing a token with one placed before it is rejected.
    """
    placed: list[TokenSpan] = []
    rejected: list[tuple[Region, str]] = []
    candidates = []
    for region in regions:
        problem = span_problem(region, text)
        if problem:
            rejected.append((region, problem))
        else:
            candidates.append(region)
    candidates.sort(key=lambda region: region.value["start"])
    starts = [start for start, _ in tokens]
    ends = [end for _, end in tokens]
    next_free = 0  # tokens before this index belong to placed spans
    for region in candidates:
        # The tokens sharing a character with [start, end): ends and starts both increase.
        first = bisect_right(ends, region.value["start"])
        last = bisect_left(starts, region.value["end"]) - 1
        if first > last:
            rejected.append((region, "span covers no token (only whitespace)"))
        elif first < next_free:
            rejected.append((region, "overlaps an earlier span (nested or crossing); a CoNLL token has one label"))
        else:
            placed.append(TokenSpan(region, region.labels[0], first, last))
            next_free = last + 1
    return placed, rejected


def bio_tags(token_count: int, spans: list[TokenSpan]) -> list[str]:
    tags = ["O"] * token_count
    for span in spans:
        tags[span.first] = f"B-{span.label}"
        for index in range(span.first + 1, span.last + 1):
            tags[index] = f"I-{span.label}"
    return tags


def text_of(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None
