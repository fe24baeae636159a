import csv
import json
import os
import struct
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from defect_aux_net import DefectAuxNetConfig, build_defect_aux_net
from defect_aux_net.data.preprocessing import prepare_image
from defect_aux_net.export.saved_model import export_saved_model
from defect_aux_net.visualization.overlays import draw_overlay
from tests.conftest import shared_across_workers
from tests.launch.conftest import check_success, run_launch

CLASS_NAMES = ("scratch", "pit")
# Files of the image folder, and the shape of each image the model can read. TensorFlow
# does not decode TIFF: predict decodes it with PIL and calls serving_float.
GOOD_SHAPES = {
    "a_rgb.png": (40, 56, 3),
    "b_photo.jpg": (72, 48, 3),
    "c_grey.png": (30, 30),
    "d_deep.tif": (33, 47),
}


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory):
    """`(model, .keras path, SavedModel dir)` of one small random model, made once per run.

    The checkpoint sits in `run/checkpoints/` below a launch.train-like `run/config.json`.
    """

    def save_and_export(root):
        keras.utils.set_random_seed(0)
        model = build_defect_aux_net(
            DefectAuxNetConfig.from_preset("small", input_shape=(64, 64, 3), num_classes=2)
        )
        # Scores near 0.5 instead of the 0.01 prior, so that boxes pass --score_threshold.
        bias = model.get_layer("class_head").output_conv.bias
        bias.assign(np.zeros(bias.shape, np.float32))
        checkpoint = root / "run" / "checkpoints" / "model.keras"
        checkpoint.parent.mkdir(parents=True)
        model.save(str(checkpoint))
        (root / "run" / "config.json").write_text(json.dumps({"class_names": list(CLASS_NAMES)}))
        export_saved_model(model, str(root / "export" / "1"), CLASS_NAMES)

    root = shared_across_workers(tmp_path_factory, "predict_models", save_and_export)
    checkpoint = root / "run" / "checkpoints" / "model.keras"
    model = keras.saving.load_model(str(checkpoint))
    return model, str(checkpoint), str(root / "export" / "1")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """`(folder, extra file)`: a folder of good, corrupt and non-image files, one BMP beside."""
    root = tmp_path_factory.mktemp("inputs")
    folder = root / "images"
    (folder / "nested").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, shape in GOOD_SHAPES.items():
        dtype = np.uint16 if name.endswith(".tif") else np.uint8  # A 16-bit TIFF.
        pixels = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
        Image.fromarray(pixels).save(str(folder / name))
    (folder / "bad.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("not an image either")
    Image.new("RGB", (40, 40)).save(str(folder / "nested" / "deeper.png"))  # Not expanded.
    extra = root / "extra.bmp"
    Image.fromarray(rng.integers(0, 256, (50, 36, 3), dtype=np.uint8)).save(str(extra))
    return str(folder), str(extra)


def decode(path):
    """uint8 `[h, w, c]` pixels as TensorFlow decodes them; TIFF (uint16) with PIL."""
    if path.endswith(".tif"):
        return np.asarray(Image.open(path))[..., None]
    return tf.io.decode_image(open(path, "rb").read(), expand_animations=False).numpy()


def direct_outputs(model, path):
    """The model's outputs on one file, prepared as the paper's preprocessing says."""
    image = decode(path)
    outputs = model(prepare_image(image, (64, 64), 3)[None], training=False)
    return {key: np.asarray(value)[0] for key, value in outputs.items()}


def read_outputs(output_dir):
    with open(os.path.join(output_dir, "predictions.csv")) as file:
        rows = list(csv.DictReader(file))
    with open(os.path.join(output_dir, "predictions.json")) as file:
        return rows, json.load(file)


def test_saved_model_predicts_good_files_and_reports_the_bad_one(model_paths, inputs, tmp_path):
    model, _, saved_model = model_paths
    folder, extra = inputs
    output_dir = str(tmp_path / "out")
    # Batches of 2: bad.png shares its batch with c_grey.png, which must survive it.
    result = run_launch(
        "predict", f"--model={saved_model}", f"--inputs={folder},{extra}",
        f"--output_dir={output_dir}", "--batch_size=2",
    )
    check_success(result)
    assert "bad.png: cannot decode it (Unknown image file format" in result.stderr

    files = [os.path.join(folder, name) for name in sorted(GOOD_SHAPES)] + [extra]
    rows, predictions = read_outputs(output_dir)
    records = predictions["predictions"]
    assert [row["file"] for row in rows] == [record["file"] for record in records] == files
    assert predictions["class_names"] == list(CLASS_NAMES)
    defective = sum(record["is_defective"] for record in records)
    assert f"Predicted 5 of 6 files ({defective} defective, 1 skipped)" in result.stderr
    assert sorted(os.listdir(output_dir)) == sorted(
        ["a_rgb.png", "b_photo.png", "c_grey.png", "d_deep.png", "extra.png",
         "predictions.csv", "predictions.json"]
    )

    signatures = tf.saved_model.load(saved_model).signatures
    for path, row, record in zip(files, rows, records):
        assert row["overlay"] == record["overlay"]
        original = np.asarray(Image.open(path))
        expected = direct_outputs(model, path)
        probabilities = [record["probabilities"][name] for name in CLASS_NAMES]
        np.testing.assert_allclose(probabilities, expected["classification"], atol=1e-5)
        np.testing.assert_allclose(
            [float(row["p_scratch"]), float(row["p_pit"])], probabilities, rtol=1e-6
        )
        assert record["is_defective"] == bool(np.any(expected["classification"] >= 0.5))
        assert row["is_defective"] == str(int(record["is_defective"]))

        # Mask areas at the original size: TensorFlow's nearest resize of the direct masks.
        height, width = original.shape[:2]
        # Pixels within 1e-4 of the threshold may go either way between the two graphs.
        masks = tf.image.resize(expected["segmentation"], (height, width), "nearest").numpy()
        pixels = np.array([record["mask_pixels"][name] for name in CLASS_NAMES])
        assert np.all(pixels >= np.sum(masks >= 0.5 + 1e-4, axis=(0, 1)))
        assert np.all(pixels <= np.sum(masks >= 0.5 - 1e-4, axis=(0, 1)))
        assert 0 < pixels.sum() < 2 * height * width

        # Boxes: the signature's first num_detections with a score >= 0.3 (the default).
        if path.endswith(".tif"):
            pixels = tf.constant(np.repeat(decode(path), 3, axis=-1)[None], tf.float32)
            served = signatures["serving_float"](images=pixels)
        else:
            served = signatures["serving_default"](images=tf.constant([open(path, "rb").read()]))
        served = {key: value.numpy()[0] for key, value in served.items()}
        kept = np.flatnonzero(
            (np.arange(100) < served["num_detections"]) & (served["scores"] >= 0.3)
        )
        assert 0 < len(kept) == len(record["boxes"]) == int(row["num_boxes"])
        np.testing.assert_allclose([box["score"] for box in record["boxes"]],
                                   served["scores"][kept], atol=1e-5)
        np.testing.assert_allclose([box["box"] for box in record["boxes"]],
                                   served["boxes"][kept], atol=1e-5)
        assert [box["class"] for box in record["boxes"]] == [
            CLASS_NAMES[index] for index in served["classes"][kept]
        ]

        overlay = Image.open(os.path.join(output_dir, record["overlay"]))
        assert overlay.mode == "RGB" and overlay.size == (width, height)

    # The grey overlay is the original at its size with the masks and kept boxes on it.
    grey_record = records[2]
    grey = direct_outputs(model, files[2])
    boxes = grey_record["boxes"]
    expected_overlay = draw_overlay(
        np.asarray(Image.open(files[2])),
        masks=grey["segmentation"],
        boxes=[box["box"] for box in boxes],
        scores=[box["score"] for box in boxes],
        classes=[CLASS_NAMES.index(box["class"]) for box in boxes],
        class_names=CLASS_NAMES,
    )
    overlay = np.asarray(Image.open(os.path.join(output_dir, "c_grey.png")), np.int16)
    # Masks from the direct call may flip a pixel whose probability sits at 0.5 +- 1e-6.
    differing = np.any(overlay != np.asarray(expected_overlay, np.int16), axis=-1)
    assert differing.mean() < 0.01


def test_checkpoint_takes_class_names_from_its_run_config(model_paths, inputs, tmp_path):
    model, checkpoint, _ = model_paths
    folder, _ = inputs
    path = os.path.join(folder, "b_photo.jpg")
    output_dir = str(tmp_path / "out")
    result = run_launch(
        "predict", f"--model={checkpoint}", f"--inputs={path}", f"--output_dir={output_dir}",
        "--score_threshold=1.0", "--mask_threshold=1.0",
    )
    check_success(result)
    rows, predictions = read_outputs(output_dir)
    assert list(rows[0]) == ["file", "overlay", "is_defective", "p_scratch", "p_pit", "num_boxes"]
    record = predictions["predictions"][0]
    expected = direct_outputs(model, path)["classification"]
    np.testing.assert_allclose(
        [record["probabilities"][name] for name in CLASS_NAMES], expected, atol=1e-5
    )
    # Sigmoid outputs below 1: nothing reaches thresholds of 1.
    assert record["boxes"] == [] and rows[0]["num_boxes"] == "0"
    assert record["mask_pixels"] == {"scratch": 0, "pit": 0}
    # With nothing drawn, the overlay is the original photo.
    np.testing.assert_array_equal(
        np.asarray(Image.open(os.path.join(output_dir, "b_photo.png"))),
        np.asarray(Image.open(path).convert("RGB")),
    )


def test_exit_status_is_non_zero_when_no_file_can_be_processed(model_paths, inputs, tmp_path):
    _, checkpoint, _ = model_paths
    folder, _ = inputs
    result = run_launch(
        "predict", f"--model={checkpoint}", f"--inputs={os.path.join(folder, 'bad.png')}",
        f"--output_dir={tmp_path}", "--class_names=crack,dent",
    )
    assert result.returncode == 1
    assert "bad.png: cannot decode it" in result.stderr
    assert "No file of --inputs could be processed" in result.stderr
    rows, predictions = read_outputs(str(tmp_path))
    assert rows == [] and predictions["predictions"] == []
    assert predictions["class_names"] == ["crack", "dent"]  # --class_names over config.json.


def test_bad_flags_name_the_flag(tmp_path):
    result = run_launch(
        "predict", f"--inputs={tmp_path / 'missing.png'}", f"--output_dir={tmp_path}",
        "--batch_size=0", "--mask_threshold=2", "--score_threshold=-1",
    )
    assert result.returncode != 0
    for message in [
        "--model must have a value other than None",
        "--inputs must list existing image files or folders",
        "--batch_size must be at least 1",
        "--mask_threshold must be in [0, 1]",
        "--score_threshold must be in [0, 1]",
    ]:
        assert message in result.stderr


def decompression_bomb_png(width=100_000, height=100_000) -> bytes:
    """A PNG whose header claims `width` x `height` RGB pixels, in 69 bytes.

    Beyond PIL's limit (2 x Image.MAX_IMAGE_PIXELS), and beyond TensorFlow's int
    sizes, so that no decoder allocates the image.
    """

    def chunk(kind, data):
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        [chunk(b"IHDR", header), chunk(b"IDAT", zlib.compress(b"\0" * 16)), chunk(b"IEND", b"")]
    )


def test_bombs_fifos_and_devices_are_skipped_by_name(model_paths, inputs, tmp_path):
    _, _, saved_model = model_paths
    folder, _ = inputs
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("a_rgb.png", "c_grey.png"):
        (mixed / name).write_bytes(open(os.path.join(folder, name), "rb").read())
    (mixed / "b_bomb.png").write_bytes(decompression_bomb_png())
    os.mkfifo(mixed / "b_fifo.png")  # Found in the folder.
    os.mkfifo(tmp_path / "given.png")  # Given in --inputs.
    output_dir = tmp_path / "out"
    # A regression reads a FIFO forever: the timeout bounds it (the run takes ~15 s).
    result = run_launch(
        "predict", f"--model={saved_model}",
        f"--inputs={mixed},{tmp_path / 'given.png'},/dev/null", f"--output_dir={output_dir}",
        timeout=180, fresh_process=True,
    )
    check_success(result)
    bomb, fifo, given = (str(mixed / "b_bomb.png"), str(mixed / "b_fifo.png"),
                         str(tmp_path / "given.png"))
    assert (f"Skipping {bomb}: too large to decode (Image size (10000000000 pixels) exceeds "
            "limit of 178956970 pixels") in result.stderr
    for path in (fifo, given, "/dev/null"):
        assert f"Skipping {path}: not a regular file (a FIFO, device or socket)" in result.stderr
    assert "Predicted 2 of 6 files" in result.stderr and "4 skipped" in result.stderr

    rows, predictions = read_outputs(str(output_dir))
    good = [str(mixed / "a_rgb.png"), str(mixed / "c_grey.png")]
    assert [(row["file"], row["overlay"]) for row in rows] == [
        (good[0], "a_rgb.png"), (good[1], "c_grey.png")
    ]
    assert [record["file"] for record in predictions["predictions"]] == good
    assert [item["file"] for item in predictions["skipped"]] == [bomb, fifo, given, "/dev/null"]
    assert "decompression bomb" in predictions["skipped"][0]["reason"]
    for row in rows:
        overlay = Image.open(output_dir / row["overlay"])
        assert overlay.size == Image.open(row["file"]).size


def test_a_run_that_stops_midway_leaves_no_table_looking_complete(model_paths, inputs, tmp_path):
    _, checkpoint, _ = model_paths
    folder, _ = inputs
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    # The previous run's tables, and a folder where this run writes b_photo.jpg's overlay.
    (output_dir / "predictions.csv").write_text("file,is_defective\nold.png,0\n")
    (output_dir / "predictions.json").write_text('{"predictions": []}')
    (output_dir / "b_photo.png").mkdir()
    result = run_launch(
        "predict", f"--model={checkpoint}", f"--inputs={folder}", f"--output_dir={output_dir}",
        "--batch_size=1",
    )
    assert not (output_dir / "predictions.csv").exists()
    assert not (output_dir / "predictions.json").exists()
    assert result.returncode == 1
    assert f"Stopped: cannot write to --output_dir={output_dir}" in result.stderr
    # The rows done before the failure: a_rgb.png only.
    with open(output_dir / "predictions.partial.csv") as file:
        rows = list(csv.DictReader(file))
    assert [(row["file"], row["overlay"]) for row in rows] == [
        (os.path.join(folder, "a_rgb.png"), "a_rgb.png")
    ]


def test_non_finite_outputs_are_failures_not_good_parts(model_paths, inputs, tmp_path):
    _, checkpoint, _ = model_paths
    folder, _ = inputs
    model = keras.saving.load_model(checkpoint)
    stem = model.weights[0]
    stem.assign(np.full(stem.shape, np.nan, np.float32))
    nan_checkpoint = str(tmp_path / "nan.keras")
    model.save(nan_checkpoint)
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    (output_dir / "predictions.csv").write_text("file,is_defective\nold.png,0\n")
    files = [os.path.join(folder, name) for name in ("a_rgb.png", "b_photo.jpg")]
    result = run_launch(
        "predict", f"--model={nan_checkpoint}", f"--inputs={','.join(files)}",
        f"--output_dir={output_dir}", "--class_names=scratch,pit",
    )
    assert result.returncode == 1
    assert "No file of --inputs could be processed" in result.stderr
    # This run's tables, empty: no row says "not defective", none is the previous run's.
    rows, predictions = read_outputs(str(output_dir))
    assert rows == [] and predictions["predictions"] == []
    assert [item["file"] for item in predictions["skipped"]] == files
    # The serving module refuses NaN outputs (InvalidArgument), or, for modules exported
    # before it did, predict finds them.
    for item in predictions["skipped"]:
        assert "NaN" in item["reason"]
        assert f"Skipping {item['file']}: {item['reason']}" in result.stderr


def test_a_model_path_that_is_no_model_is_named(inputs, tmp_path):
    folder, _ = inputs
    result = run_launch(
        "predict", f"--model={tmp_path}", f"--inputs={folder}", f"--output_dir={tmp_path / 'out'}"
    )
    assert result.returncode != 0
    assert f"--model={tmp_path}: {tmp_path} is not a model: expected a launch.train run folder" in (
        result.stderr
    )
