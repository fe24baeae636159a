"""Choosing the fused image score's weights and threshold on a validation split.

The two-stage network (Bozic et al., ICPR 2020) ranks images by its classifier. A
model with several heads has more evidence per image (`postprocessing.image_evidence`:
highest class probability, highest mask probability, highest detection score), and
on some data another head, or a blend, ranks images better. `choose_image_rule`
starts from the equal blend of the heads and searches weights on a coarse simplex
grid for a better per-image AP (one that beats the equal blend by more than its
sampling error), then takes the best-F1 threshold of the fused score.

Why the equal blend and not the classifier: where a validation split cannot tell the
heads apart (a few defective images, all ranked first by every head), the choice
falls back on it, and there the mask ranked images better than the classifier in
every measurement we have: per-image AP on KolektorSDD's val folder, classifier / mask /
detection, 0.939 / 0.962 / 0.948, 0.925 / 0.962 / 0.930, 0.800 / 0.845 / 0.712 and
0.926 / 0.949 / 0.931 (`benchmarks/README.md`), and 0.627 / 0.691 / 0.838 on a third,
unseen dataset; the equal blend beat the classifier in the two runs where we scored
it. An average of heads that err on different images errs less than its average head.
"""

import dataclasses
import itertools

import numpy as np

from defect_aux_net.evaluation.precision_recall import average_precision, best_f1_threshold
from defect_aux_net.inference.postprocessing import IMAGE_SOURCES, ImageRule, fused_score

# Grid step of the weights: coarse, so that a validation split of a few dozen
# defective images does not pick weights that fit its noise.
WEIGHT_STEP = 0.1


@dataclasses.dataclass(frozen=True)
class ImageRuleChoice:
    """What `choose_image_rule` found.

    Attributes:
      rule: the chosen `ImageRule`; None when the per-class rule stays (fewer than two
        sources, or a split without defective or without defect-free images).
      aps: per-image AP on the split of each source's evidence and, with a rule, of
        the fused score (`fused`).
      reason: why there is no rule; empty with one.
    """

    rule: ImageRule | None
    aps: dict
    reason: str = ""


def weight_grid(sources, step: float = WEIGHT_STEP) -> list:
    """Weight tuples (in `IMAGE_SOURCES` order) on the simplex of `sources`, step `step`.

    Ordered from the heaviest on the first source of `IMAGE_SOURCES` down
    (lexicographically descending), so that among blends of equal score the
    classifier-heavier wins.

    Raises:
      ValueError: `step` does not divide 1, or a source is not in `IMAGE_SOURCES`.
    """
    steps = round(1 / step) if step > 0 else 0
    if steps < 1 or abs(steps * step - 1) > 1e-9:
        raise ValueError(f"The weight step must divide 1 (e.g. 0.1, 0.25), got {step!r}.")
    unknown = sorted(set(sources) - set(IMAGE_SOURCES))
    if unknown:
        raise ValueError(f"Sources must be among {IMAGE_SOURCES}, got {unknown}.")
    positions = [IMAGE_SOURCES.index(source) for source in IMAGE_SOURCES if source in sources]
    grid = []
    for counts in itertools.product(range(steps, -1, -1), repeat=len(positions)):
        if sum(counts) == steps:
            weights = [0.0] * len(IMAGE_SOURCES)
            for position, count in zip(positions, counts):
                weights[position] = count / steps
            grid.append(tuple(weights))
    return grid


def equal_weights(sources) -> tuple:
    """Weights (in `IMAGE_SOURCES` order) that average `sources` with equal weight."""
    return tuple(1 / len(sources) if source in sources else 0.0 for source in IMAGE_SOURCES)


def ap_standard_error(ap: float, num_defective: int) -> float:
    """A per-image AP's sampling error over `num_defective` defective images.

    The binomial standard error `sqrt(ap * (1 - ap) / n)`, and at least `1 / n` (one
    defective image's share): an AP of 1 on eight images is no certainty either.
    """
    return max(np.sqrt(ap * (1 - ap) / num_defective), 1 / num_defective)


def choose_image_rule(labels, evidence: dict, step: float = WEIGHT_STEP) -> ImageRuleChoice:
    """The weights with the best per-image AP on a split, and the best-F1 threshold there.

    Example:
    ```python
    choice = choose_image_rule([1, 0], {"classification": [0.6, 0.7], "mask": [0.9, 0.2]})
    choice.rule.weights_by_source()  # {"classification": 0.5, "mask": 0.5, "detection": 0.0}
    ```

    Args:
      labels: `[N]` 1 for a defective image, 0 for a defect-free one.
      evidence: `{source: [N]}`, `postprocessing.image_evidence` of the split.
      step: the weight grid's step (`weight_grid`).

    Returns:
      an `ImageRuleChoice`.
    """
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    evidence = {source: np.asarray(values, np.float32) for source, values in evidence.items()}
    for source, values in evidence.items():
        if values.shape != labels.shape:
            raise ValueError(
                f"The `{source}` evidence must hold one score per image ({labels.size}), "
                f"got shape {values.shape}."
            )
    aps = {source: average_precision(labels, values) for source, values in evidence.items()}
    if len(evidence) < 2:
        return ImageRuleChoice(None, aps, "a single head: its own rule stays")
    if labels.all() or not labels.any():
        return ImageRuleChoice(
            None, aps, "the split needs defective and defect-free images to rank them"
        )
    first = equal_weights(evidence)
    first_ap = average_precision(labels, fused_score(evidence, ImageRule(first, 0.0)))
    # Another blend must beat the equal blend by more than its AP's sampling error, so
    # that a validation split with a handful of defective images keeps the equal blend
    # rather than its own noise.
    margin = ap_standard_error(first_ap, int(labels.sum()))
    best_ap, best_weights = first_ap, first
    for weights in weight_grid(evidence, step):
        ap = average_precision(labels, fused_score(evidence, ImageRule(weights, 0.0)))
        if ap > best_ap and ap > first_ap + margin:
            best_ap, best_weights = ap, weights
    fused = np.asarray(fused_score(evidence, ImageRule(best_weights, 0.0)))
    # A convex blend of scores in [0, 1]; float32 rounding may pass 1 by an ulp.
    threshold = min(best_f1_threshold(labels, fused)["threshold"], 1.0)
    return ImageRuleChoice(ImageRule(best_weights, threshold), aps | {"fused": best_ap})
