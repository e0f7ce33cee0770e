"""Tokens and BIO tags: the same as Label Studio's converter for every span set it handles without loss."""

import random

from lsflow.core.geometry.text_spans import bio_tags, place_spans, tokenize
from lsflow.core.model.task import Region

PIECES = ["Zoë", "Müller", "São", "Paulo", "東京", "🗼", "Москва", "km/h", "ACME/Beta", "O'Neil's", "don't", "1,000",
          "10:30", "e.g.", "U.S.", "\"quoted\"", "'single'", "(parens)", "[x]", "...", "?", "!", ";", "#tag", "@me",
          "50%", "$5", "a&b", "--", "end.", "x", "Berlin-based"]
GAPS = [" ", " ", " ", "  ", "\n", "\t", " \n "]


def region(start, end, text, label="X"):
    value = {"start": start, "end": end, "text": text[start:end], "labels": [label]}
    return Region(None, "labels", "label", "text", value, None, None, None, {"value": value})


def test_random_texts_tokenize_and_tag_as_label_studio_does():
    from label_studio_sdk.converter.utils import create_tokens_and_tags

    rng = random.Random(20251125)
    compared = 0
    for _ in range(800):
        text = "".join(rng.choice(PIECES) + rng.choice(GAPS) for _ in range(rng.randint(1, 14))).rstrip(" ")
        if rng.random() < 0.5:
            text += rng.choice([".", "!", " .", "?\""])
        regions = []
        for _ in range(rng.randint(0, 4)):
            start = rng.randrange(len(text))
            end = rng.randint(start + 1, min(len(text), start + 20))
            regions.append(region(start, end, text, rng.choice(["PER", "LOC"])))
        tokens = tokenize(text)
        placed, rejected = place_spans(regions, text, tokens)
        if rejected:  # Label Studio cuts or loses such spans; lsflow reports them (tested in test_conll.py)
            continue
        theirs_tokens, theirs_tags = create_tokens_and_tags(text, [dict(r.value) for r in regions])
        assert [text[s:e] for s, e in tokens] == theirs_tokens, text
        assert bio_tags(len(tokens), placed) == theirs_tags, (text, [r.value for r in regions])
        compared += 1
    assert compared > 300
