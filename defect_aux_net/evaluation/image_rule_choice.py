"""Choosing the fused image score's weights and threshold on a validation split.

The two-stage network (Bozic et al., ICPR 2020) ranks images by its classifier. A
model with several heads has more evidence per image (`postprocessing.image_evidence`:
highest class probability, highest mask probability, highest detection score), and
on some data another head, or a blend, ranks images better. `choose_image_rule`
searches weights on a coarse simplex grid for the best per-image AP (one that beats
the classifier alone by more than its sampling error), then takes the best-F1
threshold of the fused score.
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
    (lexicographically descending), so that among equal scores the first wins: the
    classifier's rule, as in the paper, unless another blend ranks strictly better.

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
    choice.rule.weights_by_source()  # {"classification": 0.0, "mask": 1.0, "detection": 0.0}
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
    grid = weight_grid(evidence, step)
    first_ap = average_precision(labels, fused_score(evidence, ImageRule(grid[0], 0.0)))
    # Another blend must beat the first weights (the classifier's rule where there is a
    # classifier) by more than the first AP's sampling error, so that a validation split
    # with a handful of defective images keeps the paper's rule rather than its noise.
    margin = ap_standard_error(first_ap, int(labels.sum()))
    best_ap, best_weights = first_ap, grid[0]
    for weights in grid[1:]:
        ap = average_precision(labels, fused_score(evidence, ImageRule(weights, 0.0)))
        if ap > best_ap and ap > first_ap + margin:
            best_ap, best_weights = ap, weights
    fused = np.asarray(fused_score(evidence, ImageRule(best_weights, 0.0)))
    # A convex blend of scores in [0, 1]; float32 rounding may pass 1 by an ulp.
    threshold = min(best_f1_threshold(labels, fused)["threshold"], 1.0)
    return ImageRuleChoice(ImageRule(best_weights, threshold), aps | {"fused": best_ap})
