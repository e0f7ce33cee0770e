"""Which annotations of a task go into a dataset.

Label Studio's converter keeps one annotation per task for several formats (and which one depends
on list order). lsflow makes it a stated policy, defaulting to all of them:

- `all`: every annotation that was not cancelled (skipped);
- `latest`: the most recently updated one;
- `ground_truth_first`: the latest ground-truth annotation, else the latest one;
- `annotator:<id or email>`: only that annotator's annotations;
- `consensus` / `consensus:<quorum>`: one annotation merged from all of them (majority vote,
  clustered and fused boxes, token vote for spans; `lsflow.core.compare.consensus`). The quorum is how
  many annotations must agree, by default more than half of the task's non-cancelled ones. The merge
  needs region geometry, a layer above this one, so `lsflow.core.compare.consensus.select_annotations`
  applies this policy (and hands every other one to `select_annotations` here).

Predictions are model output, never annotations: no policy exports them. Every annotation left out
is counted in the dataset's report with the reason (cancelled, or not selected by the policy).
"""

from __future__ import annotations

from dataclasses import dataclass

from lsflow.core.model.task import Annotation, Region, Task

POLICIES = ("all", "latest", "ground_truth_first", "annotator:<id or email>", "consensus[:<quorum>]")
CANCELLED = "cancelled by the annotator"
NOT_SELECTED = "not selected by the annotation policy"
MERGED = "merged into the consensus"


@dataclass(frozen=True, slots=True)
class AnnotationPolicy:
    kind: str = "all"
    annotator: str | None = None
    quorum: int | None = None  # consensus: annotations that must agree; None: more than half

    @classmethod
    def parse(cls, text: str) -> AnnotationPolicy:
        if text in ("all", "latest", "ground_truth_first", "consensus"):
            return cls(text)
        if text.startswith("annotator:") and text.split(":", 1)[1]:
            return cls("annotator", text.split(":", 1)[1])
        if text.startswith("consensus:"):
            quorum = text.split(":", 1)[1]
            if not quorum.isdigit() or int(quorum) < 1:
                raise ValueError(f"consensus quorum '{quorum}' is not a whole number of annotations >= 1")
            return cls("consensus", quorum=int(quorum))
        raise ValueError(f"unknown annotation policy '{text}'; use one of {', '.join(POLICIES)}")

    def __str__(self) -> str:
        if self.kind == "annotator":
            return f"annotator:{self.annotator}"
        if self.kind == "consensus" and self.quorum is not None:
            return f"consensus:{self.quorum}"
        return self.kind


@dataclass(slots=True)
class ConsensusAnnotation(Annotation):
    """The annotation the consensus policy merged: `id` None, `completed_by` "consensus", `raw` with the
    merged result. `sources` are the annotations it was merged from; `unmerged` the regions of theirs
    that reached no quorum (or that the consensus does not merge), with the reason: every format
    reports them as dropped, so nothing disappears silently."""

    sources: tuple[Annotation, ...] = ()
    unmerged: tuple[tuple[Annotation, Region, str], ...] = ()


def contributing(annotations: list[Annotation]) -> list[Annotation]:
    """The annotations behind the chosen ones: a consensus stands for those it was merged from."""
    return [source for a in annotations
            for source in (a.sources if isinstance(a, ConsensusAnnotation) else (a,))]


def select_annotations(task: Task, policy: AnnotationPolicy) -> tuple[list[Annotation], list[tuple[Annotation, str]]]:
    """(annotations to export, [(annotation left out, why)])."""
    skipped = [(a, CANCELLED) for a in task.annotations if a.was_cancelled]
    candidates = [a for a in task.annotations if not a.was_cancelled]
    if policy.kind == "all" or not candidates:
        return candidates, skipped
    if policy.kind == "consensus":
        raise ValueError("the consensus policy merges regions: apply it with "
                         "lsflow.core.compare.consensus.select_annotations")
    if policy.kind == "annotator":
        chosen = [a for a in candidates if _annotator_matches(a, policy.annotator)]
    else:
        pool = candidates
        if policy.kind == "ground_truth_first":
            pool = [a for a in candidates if a.ground_truth] or candidates
        chosen = [max(pool, key=_recency)]
    chosen_ids = {id(a) for a in chosen}
    skipped += [(a, NOT_SELECTED) for a in candidates if id(a) not in chosen_ids]
    return chosen, skipped


def _recency(annotation: Annotation) -> tuple[str, str, int]:
    # ISO-8601 strings from one server sort in time order; the id breaks ties deterministically.
    return (annotation.updated_at or "", annotation.created_at or "", annotation.id or 0)


def _annotator_matches(annotation: Annotation, wanted: str | None) -> bool:
    who = annotation.completed_by
    if isinstance(who, dict):
        return wanted in (str(who.get("id")), who.get("email"))
    return str(who) == wanted
