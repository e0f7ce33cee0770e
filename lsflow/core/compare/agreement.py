"""Agreement between annotators on tasks annotated more than once.

Regions (boxes, polygons, masks, keypoints, text spans): per pair of annotators of a task, their
regions are matched one to one (`matching.match`, similarity >= 0.5, same label and control), and
F1 = 2·matched / (regions of the first + regions of the second): the harmonic mean of precision and
recall with either annotator taken as the reference, so it is symmetric. Totals (per class, per
pair, per task, overall) add the counts first and divide once (micro-averaged).

Classifications (choices, taxonomy): every (task, control) is an item and each annotator's value
one rating. Cohen's kappa per pair of annotators (the items both rated), Fleiss' kappa when every
item has the same number of ratings, Krippendorff's alpha (nominal) always (it allows missing
ratings). The formulas are the textbook ones, written out in each function.

Text areas are not part of either (their distance, CER, is in `matching`); they are counted as not
compared. Cancelled annotations are not ratings. An annotator with several annotations on a task is
rated by the most recently updated one.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from lsflow.core.compare.matching import match
from lsflow.core.compare.regions import Comparable, comparables
from lsflow.core.model.task import Annotation, ImageSize, Task

IOU_THRESHOLD = 0.5
REGION_KINDS = frozenset({"box", "polygon", "mask", "keypoint", "span"})


def annotator_of(annotation: Annotation) -> str:
    """The annotator as the export names them: email, else id."""
    who = annotation.completed_by
    if isinstance(who, dict):
        return str(who.get("email") or who.get("id"))
    return "unknown" if who is None else str(who)


@dataclass
class Counts:
    """Regions matched between two annotators, and how many each drew."""

    matched: int = 0
    first: int = 0
    second: int = 0

    def add(self, matched: int, first: int, second: int) -> None:
        self.matched += matched
        self.first += first
        self.second += second

    @property
    def f1(self) -> float | None:
        total = self.first + self.second
        return 2 * self.matched / total if total else None

    def as_dict(self) -> dict[str, Any]:
        return {"f1": self.f1, "matched": self.matched, "regions_first": self.first, "regions_second": self.second}


@dataclass
class AgreementReport:
    tasks: int = 0  # tasks read
    tasks_compared: int = 0  # with at least two annotators
    regions_overall: Counts = field(default_factory=Counts)
    regions_by_class: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    regions_by_pair: dict[tuple[str, str], Counts] = field(default_factory=lambda: defaultdict(Counts))
    # Per task compared: its counts, and per class.
    regions_by_task: dict[Any, Counts] = field(default_factory=dict)
    # Per classification control: item (task id) → annotator → value.
    ratings: dict[str, dict[Any, dict[str, str]]] = field(default_factory=lambda: defaultdict(dict))
    not_compared: Counter[str] = field(default_factory=Counter)

    def classifications(self) -> dict[str, dict[str, Any]]:
        result = {}
        for control, items in sorted(self.ratings.items()):
            annotators = sorted({who for item in items.values() for who in item})
            pairs = {}
            for first, second in combinations(annotators, 2):
                both = [(item[first], item[second]) for item in items.values() if first in item and second in item]
                pairs[f"{first} / {second}"] = {"items": len(both), "cohen_kappa": cohen_kappa(both) if both else None}
            rated = [list(item.values()) for item in items.values()]
            counts = {len(r) for r in rated}
            result[control] = {
                "items": len(rated),
                "annotators": annotators,
                "krippendorff_alpha": krippendorff_alpha(rated),
                "fleiss_kappa": fleiss_kappa(rated) if len(counts) == 1 and counts != {1} else None,
                "fleiss_kappa_note": None if len(counts) == 1 and counts != {1}
                else "items have different numbers of ratings: see Krippendorff's alpha",
                "pairs": pairs,
            }
        return result

    def as_dict(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "tasks_compared": self.tasks_compared,
            "iou_threshold": IOU_THRESHOLD,
            "regions": {
                "overall": self.regions_overall.as_dict(),
                "by_class": {label: c.as_dict() for label, c in sorted(self.regions_by_class.items())},
                "by_pair": {f"{a} / {b}": c.as_dict() for (a, b), c in sorted(self.regions_by_pair.items())},
                "by_task": {str(task): c.as_dict() for task, c in self.regions_by_task.items()},
            },
            "classifications": self.classifications(),
            "not_compared": dict(self.not_compared.most_common()),
        }


def agreement(tasks: Iterable[tuple[Task, ImageSize | None]]) -> AgreementReport:
    """Agreement over the tasks (each with its image size, for regions that do not carry it)."""
    report = AgreementReport()
    for task, image in tasks:
        report.tasks += 1
        add_task(report, task, image)
    return report


def add_task(report: AgreementReport, task: Task, image: ImageSize | None = None) -> None:
    latest: dict[str, Annotation] = {}
    for annotation in task.annotations:
        if annotation.was_cancelled:
            continue
        who = annotator_of(annotation)
        kept = latest.get(who)
        if kept is None or (annotation.updated_at or "", annotation.id or 0) > (kept.updated_at or "", kept.id or 0):
            latest[who] = annotation
    if len(latest) < 2:
        return
    report.tasks_compared += 1
    regions: dict[str, list[Comparable]] = {}
    for who, annotation in sorted(latest.items()):
        made, rejected = comparables(annotation, image)
        report.not_compared.update(why for _, why in rejected)
        report.not_compared.update(f"'{c.region.type}' regions are not part of agreement"
                                   for c in made if c.kind == "textarea")
        regions[who] = [c for c in made if c.kind in REGION_KINDS]
        for choice in (c for c in made if c.kind == "choice"):
            assert choice.label is not None  # a choice always has its values
            report.ratings[f"{choice.from_name}→{choice.to_name}"].setdefault(task.id, {})[who] = choice.label
    task_counts = report.regions_by_task.setdefault(task.id, Counts())
    for first, second in combinations(sorted(regions), 2):
        a, b = regions[first], regions[second]
        pairs = match(a, b, IOU_THRESHOLD, same_label=True).pairs
        per_class: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for m in pairs:
            per_class[_class(a[m.a])][0] += 1
        for item in a:
            per_class[_class(item)][1] += 1
        for item in b:
            per_class[_class(item)][2] += 1
        for label, (matched, n_a, n_b) in per_class.items():
            report.regions_by_class[label].add(matched, n_a, n_b)
        report.regions_by_pair[(first, second)].add(len(pairs), len(a), len(b))
        task_counts.add(len(pairs), len(a), len(b))
        report.regions_overall.add(len(pairs), len(a), len(b))


def _class(item: Comparable) -> str:
    return item.label if item.label is not None else "(no label)"


def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Cohen (1960): κ = (p_o − p_e) / (1 − p_e), p_o the share of items the two raters agree on,
    p_e = Σ_k p_k(first)·p_k(second) the agreement expected from each rater's own category shares.
    None when p_e = 1 (both raters gave one and the same category throughout: κ is undefined)."""
    n = len(pairs)
    observed = sum(1 for x, y in pairs if x == y) / n
    first, second = Counter(x for x, _ in pairs), Counter(y for _, y in pairs)
    expected = sum(first[k] * second[k] for k in first) / (n * n)
    return None if expected == 1 else (observed - expected) / (1 - expected)


def fleiss_kappa(items: Sequence[Sequence[str]]) -> float | None:
    """Fleiss (1971), every item rated n times: P_i = (Σ_j n_ij² − n) / (n(n − 1)) the agreement on
    item i (n_ij raters put it in category j), P̄ their mean, p_j = Σ_i n_ij / (N n) the category
    shares, P̄_e = Σ_j p_j²; κ = (P̄ − P̄_e) / (1 − P̄_e). None when P̄_e = 1."""
    n = len(items[0])
    if any(len(item) != n for item in items) or n < 2:
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings for every item")
    totals: Counter[str] = Counter()
    agreement_sum = 0.0
    for item in items:
        counts = Counter(item)
        totals.update(counts)
        agreement_sum += (sum(c * c for c in counts.values()) - n) / (n * (n - 1))
    p_bar = agreement_sum / len(items)
    p_e = sum((c / (len(items) * n)) ** 2 for c in totals.values())
    return None if p_e == 1 else (p_bar - p_e) / (1 - p_e)


def krippendorff_alpha(items: Sequence[Sequence[str]]) -> float | None:
    """Krippendorff's alpha, nominal (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability"):
    α = 1 − D_o / D_e. Each item u with m_u >= 2 ratings adds every ordered pair of its ratings
    (from different raters) to the coincidence matrix with weight 1 / (m_u − 1); n_c are the matrix's
    marginals, n their sum. D_o = Σ_{c≠k} o_ck / n, D_e = Σ_{c≠k} n_c n_k / (n(n − 1)).
    Items rated once cannot be paired and are left out. None when D_e = 0 (one category throughout)."""
    disagreement = 0.0  # Σ_{c≠k} o_ck
    marginals: Counter[str] = Counter()
    for item in items:
        m = len(item)
        if m < 2:
            continue
        counts = Counter(item)
        marginals.update(counts)  # Σ_k o_ck over this item = the count of c
        # Ordered pairs of different values: m² − Σ_c n_uc² pairs (a value paired with itself cancels
        # out: m_c² − m_c same-value pairs, m_c self-pairs excluded on both sides).
        disagreement += (m * m - sum(c * c for c in counts.values())) / (m - 1)
    n = sum(marginals.values())
    expected = (n * n - sum(c * c for c in marginals.values())) / (n - 1) if n > 1 else 0.0
    return None if expected == 0 else 1 - disagreement / expected
