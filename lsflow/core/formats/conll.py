"""CONLL2003: `result.conll`, Label Studio's named-entity export.

`-DOCSTART- -X- O`, then a block per exported annotation (newest first within a task) and per task
without annotations: one `token -X- _ TAG` line per token, BIO tags, a blank line after the block.
Tokens and tags are Label Studio's (see `lsflow.core.geometry.text_spans`). Where Label Studio loses spans
silently, lsflow reports them as dropped: a span nested in or crossing an earlier one, a span
covering only whitespace, a span whose offsets do not fit the text. Results that are not `Labels`
spans on a `Text` (choices, spans of other objects) have no place in CoNLL and are dropped too.
"""

from __future__ import annotations

import json
from pathlib import Path

from lsflow.core.formats.base import CheckOutcome, CheckSpec, ExportContext, Stream, TaskItem
from lsflow.core.formats.shared.text_spans import TextSpanWriter
from lsflow.core.geometry.text_spans import bio_tags

RESULT_FILE = "result.conll"
DOCSTART = "-DOCSTART- -X- O"


class ConllWriter(TextSpanWriter):
    name = "CONLL2003"
    description = "CoNLL 2003 named entities: a token per line with its BIO tag, Label Studio's tokenization"
    checks = (CheckSpec("conll_bio_valid",
                        "every line is `token -X- _ TAG`, tags form valid BIO runs, and each written span "
                        "begins exactly one B- tag"),)

    streams = {**TextSpanWriter.streams, "blocks": Stream(RESULT_FILE, header=f"{DOCSTART}\n".encode())}

    def write(self, item: TaskItem) -> None:
        for block in self.blocks(item):
            tags = bio_tags(len(block.tokens), block.spans)
            lines = [f"{block.text[start:end]} -X- _ {tag}\n" for (start, end), tag in zip(block.tokens, tags)]
            self.append("blocks", ("".join(lines) + "\n").encode())

    @classmethod
    def check(cls, out_dir: Path, context: ExportContext) -> list[CheckOutcome]:
        report = json.loads((out_dir / "lsflow_report.json").read_text(encoding="utf-8"))
        problems, begins, tokens, blocks = [], 0, 0, 0
        previous, in_block = "O", False
        with open(out_dir / RESULT_FILE, encoding="utf-8", newline="\n") as stream:
            if stream.readline().rstrip("\n") != DOCSTART:
                problems.append(f"the first line is not '{DOCSTART}'")
            for number, line in enumerate(stream, 2):
                line = line.rstrip("\n")
                if not line:
                    blocks += in_block
                    previous, in_block = "O", False
                    continue
                parts = line.rsplit(" ", 3)
                if len(parts) != 4 or parts[1:3] != ["-X-", "_"] or not parts[0]:
                    problems.append(f"line {number}: not 'token -X- _ TAG': {line!r}")
                    continue
                tokens += 1
                in_block = True
                tag = parts[3]
                problem = _bio_problem(previous, tag, context)
                if problem:
                    problems.append(f"line {number}: {problem}")
                begins += tag.startswith("B-")
                previous = tag
        if begins != report["regions_written"]:
            problems.append(f"{begins} spans begin in the file, {report['regions_written']} were written")
        return [CheckOutcome("conll_bio_valid", not problems, problems[:20],
                             {"blocks": blocks, "tokens": tokens, "spans": begins})]


def _bio_problem(previous: str, tag: str, context: ExportContext) -> str | None:
    if tag == "O":
        return None
    prefix, _, label = tag.partition("-")
    if prefix not in ("B", "I") or not label:
        return f"tag {tag!r} is not O, B-<label> or I-<label>"
    if prefix == "I" and previous[2:] != label:
        return f"{tag} does not continue a {label} span (after {previous})"
    if context.label_config is not None and label not in context.classes:
        return f"label {label!r} is not a label of the label config"
    return None
