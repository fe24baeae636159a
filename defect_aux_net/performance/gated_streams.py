"""Classification-gated inference on image streams with few defective images (gasket paper).

Each image of a stream goes through the gated model alone (batch 1, as a camera on
a production line sends them); the heads run only when the gate passes the image,
so the mean time per image falls with the share of images the gate stops. With the
ground-truth boxes of a detector's images, the gated pipeline's COCO mAP is also given
as a fraction of the ungated one's (the gasket paper keeps 96 %).
"""

import time

import numpy as np
import tensorflow as tf

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.data import datasets
from defect_aux_net.data.pipeline import InputOptions, make_dataset
from defect_aux_net.evaluation.detection_metrics import DetectionMetrics
from defect_aux_net.inference.postprocessing import decode_outputs
from defect_aux_net.models.gated_inference import GatedModel
from defect_aux_net.models.model_builders import build_model, model_config
from defect_aux_net.performance.measurement import median_seconds, to_numpy
from defect_aux_net.training import run_files, thresholds_file

# The gasket paper's defect rates (its Table: 5 %, 12 % and 50 % defective images).
STREAM_DEFECT_RATES = (0.05, 0.12, 0.5)
# Passing images' outputs are the ungated model's up to float32 rounding: TF's CPU
# kernels sum in an order that depends on the graph and the batch size (the ungated
# model itself gives an image's box outputs 1.9e-6 apart at batch 1 and 5; measured).
EQUALITY_TOLERANCE = 1e-5
# A gate threshold no probability reaches: the gate stops every image.
STOP_ALL = 2.0


def stream_indices(defective, defect_rate: float, length: int, seed: int) -> np.ndarray:
    """Indices of a shuffled stream of `length` images, `defect_rate` of them defective.

    Images are drawn without replacement from those `defective` flags as
    defective and as defect-free.
    """
    defective = np.asarray(defective, bool)
    num_defective = round(defect_rate * length)
    positives, negatives = np.flatnonzero(defective), np.flatnonzero(~defective)
    if num_defective > len(positives) or length - num_defective > len(negatives):
        raise ValueError(
            f"A stream of {length} images at {defect_rate:.0%} defective needs "
            f"{num_defective} defective and {length - num_defective} defect-free images; "
            f"the split has {len(positives)} and {len(negatives)}: shorten the stream."
        )
    rng = np.random.default_rng(seed)
    chosen = np.concatenate(
        [
            rng.choice(positives, num_defective, replace=False),
            rng.choice(negatives, length - num_defective, replace=False),
        ]
    )
    return rng.permutation(chosen)


def gated_streams(
    model,
    images: np.ndarray,
    defective,
    gate_thresholds,
    length: int,
    warmup: int = 3,
    repeats: int = 10,
    defect_rates=STREAM_DEFECT_RATES,
    seed: int = 0,
    ground_truth: dict | None = None,
) -> dict:
    """Mean per-image latency of gated inference on streams of `images`, against ungated.

    The ungated model and the gate alone take the same time on every image: they
    are timed as medians of `repeats` runs on the first image; the gated path is
    timed on every image of every stream.

    Args:
      model: a model whose `supports_gated_inference` (its classification head is the
        gate): a multi-task `DefectAuxNet`, a `FasterRCNN` with the gasket gate.
      images: float32 `[N, H, W, C]` model inputs.
      defective: bool `[N]` ground truth, which composes the streams.
      gate_thresholds: a scalar, or `[N]` per image: an image passes when its
        highest class probability is at least its threshold (0 passes it,
        `STOP_ALL` stops it: decisions made by another gate).
      length: images per stream.
      warmup: untimed calls of each path before timing.
      repeats: timed runs of the ungated model and of the gate alone.
      defect_rates: the streams' shares of defective images.
      ground_truth: None, or for a model with detection the images' `boxes`
        `[N, M, 4]` (pixels of the model input), `box_classes` `[N, M]` and
        `has_boxes` `[N]`, as the evaluation pipeline gives them: each stream then
        also scores the gated and the ungated pipeline's detections.

    Returns:
      `ratio_<percent>` (gated mean / ungated latency) per stream, `streams` with
      each stream's mean and pass rate, `ungated_s`, `gate_only_s` (the gate alone: the
      layers the classifier reads and the classifier), `full_path_s` and `stopped_s` (mean
      gated latency of the images that passed and of those that did not), and
      `max_abs_difference` over every output of every passing image against the
      ungated model's, and `identical_passing_results`: whether it is within
      `EQUALITY_TOLERANCE` (float32 rounding). With `ground_truth`, each stream's
      `map` holds `detection_maps` of its images, and `map_fraction_<percent>` the
      gated share of the ungated mAP@[.5:.95].
    """
    if ground_truth is not None and "detection" not in model.config.tasks:
        raise ValueError(
            f"ground_truth scores detections; this model has tasks {model.config.tasks}."
        )
    gated_model = GatedModel(model)
    # Any batch size, as the exported signatures take images.
    images_spec = tf.TensorSpec([None, *images.shape[1:]], tf.float32)
    ungated = tf.function(lambda image: model(image, training=False), input_signature=[images_spec])
    gated = tf.function(
        gated_model.__call__, input_signature=[images_spec, tf.TensorSpec([None], tf.float32)]
    )
    gate_only = tf.function(
        lambda image: gated_model.gate(image, training=False)["classification"],
        input_signature=[images_spec],
    )
    thresholds = np.broadcast_to(np.asarray(gate_thresholds, np.float32), (len(images),))
    first = images[:1]
    pass_all, stop_all = tf.constant([0.0]), tf.constant([STOP_ALL])
    for _ in range(warmup):  # Both gated branches, so that each has run before timing.
        to_numpy(gated(first, pass_all))
        to_numpy(gated(first, stop_all))
    results = {
        "ungated_s": median_seconds(lambda: to_numpy(ungated(first)), warmup, repeats)["median_s"],
        "gate_only_s": median_seconds(lambda: to_numpy(gate_only(first)), warmup, repeats)[
            "median_s"
        ],
        "streams": {},
    }
    passing_times, stopped_times = [], []
    max_difference = 0.0
    for rate in defect_rates:
        gated_times, passed_count, scored = [], 0, {"gated": [], "ungated": []}
        indices = stream_indices(defective, rate, length, seed)
        for index in indices:
            image = images[index : index + 1]
            start = time.perf_counter()
            gated_outputs = to_numpy(gated(image, thresholds[index : index + 1]))
            gated_times.append(time.perf_counter() - start)
            ungated_outputs = None
            if gated_outputs["gate_passed"][0] or ground_truth is not None:
                ungated_outputs = to_numpy(ungated(image))
            if gated_outputs["gate_passed"][0]:
                passed_count += 1
                passing_times.append(gated_times[-1])
                for name, value in ungated_outputs.items():
                    difference = float(np.abs(gated_outputs[name] - value).max())
                    max_difference = max(max_difference, difference)
            else:
                stopped_times.append(gated_times[-1])
            if ground_truth is not None:
                scored["gated"].append(detections(model, gated_outputs))
                scored["ungated"].append(detections(model, ungated_outputs))
        percent = f"{rate * 100:g}"
        results["streams"][percent] = {
            "defect_rate": rate,
            "pass_rate": passed_count / length,
            "gated_mean_s": float(np.mean(gated_times)),
        }
        results[f"ratio_{percent}"] = float(np.mean(gated_times)) / results["ungated_s"]
        if ground_truth is not None:
            truth = {key: np.asarray(value)[indices] for key, value in ground_truth.items()}
            maps = detection_maps(model, truth, scored["gated"], scored["ungated"])
            results["streams"][percent]["map"] = maps
            results[f"map_fraction_{percent}"] = maps["fraction"]
    results["full_path_s"] = float(np.mean(passing_times)) if passing_times else None
    results["stopped_s"] = float(np.mean(stopped_times)) if stopped_times else None
    results["max_abs_difference"] = max_difference
    results["tolerance"] = EQUALITY_TOLERANCE
    results["identical_passing_results"] = max_difference <= EQUALITY_TOLERANCE
    return results


def detections(model, outputs: dict) -> dict:
    """Numpy `boxes` (pixels of the input), `scores`, `classes`, `num_detections` of one
    batch of the model's raw `outputs` (those of gated inference too)."""
    outputs = {name: value for name, value in outputs.items() if name != "gate_passed"}
    decoded = decode_outputs(
        outputs, model.config, model.anchors, normalize_boxes=False, check_finite=False
    )
    keys = ("boxes", "scores", "classes", "num_detections")
    return {key: np.asarray(decoded[key]) for key in keys}


def detection_maps(model, ground_truth: dict, gated: list, ungated: list) -> dict:
    """COCO mAP@[.5:.95] and mAP@0.5 of the gated and the ungated pipeline on the same images.

    Args:
      model: the model (its class count names the categories).
      ground_truth: `boxes`, `box_classes`, `has_boxes`, one row per image.
      gated, ungated: per image, in the same order, `detections` of batch 1.

    Returns:
      `gated` and `ungated` (`{"map", "map50"}`), and `fraction` and `fraction50`:
      gated over ungated, None where the ungated mAP is not positive (no ground truth,
      or a detector that finds nothing).
    """
    class_names = [str(index) for index in range(model.config.num_classes)]
    results = {}
    for name, predictions in (("gated", gated), ("ungated", ungated)):
        metrics = DetectionMetrics(class_names)
        for index, prediction in enumerate(predictions):
            metrics.update(
                {key: value[index : index + 1] for key, value in ground_truth.items()},
                prediction,
            )
        result = metrics.result()
        results[name] = {"map": result["map"], "map50": result["map50"]}
    for key, suffix in (("map", ""), ("map50", "50")):
        ungated_value = results["ungated"][key]
        results[f"fraction{suffix}"] = (
            results["gated"][key] / ungated_value if ungated_value > 0 else None
        )
    return results


def gated_streams_of_run(
    model_dir: str,
    data_dir,
    split: str,
    length: int,
    warmup: int,
    repeats: int,
    paper_preset: str | None = None,
    seed: int = 0,
) -> dict:
    """`gated_streams` of a `launch.train` run on `split` of its dataset.

    The gate threshold is the export's default: the lowest per-class threshold
    chosen on the validation split. A detector's streams also score its detections
    (`map_fraction_<percent>`). With `paper_preset` (a preset of the run's model:
    `tekerreka` of Defect-Aux-Net, `gasket` of Faster R-CNN), `paper_network` also
    holds the streams through that network, with random weights, at its input size:
    each image passes where the trained run's gate passed it, so the decisions are a
    trained gate's and the time is the paper-size network's.

    Raises:
      ConfigError: naming `paper_preset` when the run's model has no such preset.
    """
    model = run_files.load_model(run_files.model_dir_paths(model_dir)["best"])
    experiment, class_names = run_files.read_config(model_dir)
    thresholds = thresholds_file.read_thresholds(model_dir, class_names)
    if thresholds is None:
        raise ValueError(f"{model_dir} has no thresholds.json: train it with launch.train.")
    paper_config = None
    if paper_preset:
        paper_config = paper_network_config(experiment.model_name, paper_preset, class_names)
    builder = datasets.load_builder(experiment.dataset, data_dir)
    images, defective, ground_truth = _split_images(builder, split, model.config)
    gate_threshold = float(min(thresholds))
    results = gated_streams(
        model, images, defective, gate_threshold, length, warmup, repeats, seed=seed,
        ground_truth=ground_truth if "detection" in model.config.tasks else None,
    )
    results |= {
        "gate_threshold": gate_threshold,
        "model_dir": model_dir,
        "split": f"{experiment.dataset} {split}",
    }
    if paper_config is not None:
        highest = model.predict(images, verbose=0)["classification"].max(axis=-1)
        passes = highest >= gate_threshold
        paper_images = _split_images(builder, split, paper_config)[0]
        results["paper_network"] = gated_streams(
            build_model(paper_config),
            paper_images,
            defective,
            np.where(passes, 0.0, STOP_ALL),
            length,
            warmup,
            repeats,
            seed=seed,
        ) | {"preset": paper_preset}
    return results


def paper_network_config(model_name: str, paper_preset: str, class_names):
    """The config of the run's model (`MODELS` name) at `paper_preset`, with its classes.

    Raises:
      ConfigError: naming `paper_preset` and the model's presets when it has no such
        preset.
    """
    try:
        return model_config(model_name, paper_preset, num_classes=len(class_names))
    except ConfigError as error:
        raise ConfigError(
            "paper_preset", f"paper_preset={paper_preset!r} of the run's {model_name}: {error}"
        ) from error


def _split_images(builder, split, config):
    """`(images [N, H, W, C] at the config's input size, defective [N], ground truth)`
    of a split; the ground truth's `boxes` (pixels of the input), `box_classes` and
    `has_boxes` per image."""
    batches = make_dataset(
        builder, split, config, InputOptions(32, training=False, ground_truth=True)
    )
    images, defective, truth = [], [], {"boxes": [], "box_classes": [], "has_boxes": []}
    for batch_images, ground_truth in batches.as_numpy_iterator():
        images.append(batch_images)
        defective.append(ground_truth["labels"].max(axis=-1) > 0)
        for key, values in truth.items():
            values.append(ground_truth[key])
    truth = {key: np.concatenate(values) for key, values in truth.items()}
    return np.concatenate(images), np.concatenate(defective), truth
