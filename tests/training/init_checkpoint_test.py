import dataclasses

import keras
import numpy as np
import pytest

from defect_aux_net import DefectAuxNetConfig, build_defect_aux_net
from defect_aux_net.config_errors import ConfigError
from defect_aux_net.training.init_checkpoint import (
    check_init_checkpoint,
    check_outside,
    checkpoint_file,
    copy_matching_weights,
    initialize_from_checkpoint,
)

# The small preset at 64x64: 4 classes, 9 anchors per location, 64 pyramid channels.
CONFIG = DefectAuxNetConfig.from_preset("small", input_shape=(64, 64, 3))
# The layers whose shapes follow the class count, and their kernels at 4 and 2 classes.
CLASS_LAYERS = {
    "classification_head/logits": ([512, 4], [512, 2]),
    "segmentation_head/class_conv": ([3, 3, 32, 4], [3, 3, 32, 2]),
    "class_head/output": ([3, 3, 64, 36], [3, 3, 64, 18]),
}


def weights_by_layer(model) -> dict:
    layers = {}
    for variable in model.weights:
        layers.setdefault(variable.path.rsplit("/", 1)[0], []).append(np.array(variable))
    return layers


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A 4-class model saved as a run folder's best.keras, and its weights by layer."""
    keras.utils.set_random_seed(0)
    model = build_defect_aux_net(CONFIG)
    # As after training: no weight left at a value a fresh model could also have.
    rng = np.random.default_rng(0)
    for variable in model.weights:
        variable.assign(np.abs(np.array(variable)) + rng.uniform(0.1, 0.2, variable.shape))
    folder = tmp_path_factory.mktemp("run")
    model.save(str(folder / "best.keras"))
    return str(folder), weights_by_layer(model)


def test_a_head_for_another_class_count_is_reinitialised_the_rest_copied(checkpoint):
    run_folder, source = checkpoint
    keras.utils.set_random_seed(1)
    target = build_defect_aux_net(dataclasses.replace(CONFIG, num_classes=2))
    initial = weights_by_layer(target)

    transfer = initialize_from_checkpoint(target, run_folder)

    after = weights_by_layer(target)
    assert set(after) == set(source)
    for layer, values in after.items():
        expected = initial[layer] if layer in CLASS_LAYERS else source[layer]
        for value, wanted in zip(values, expected):
            np.testing.assert_array_equal(value, wanted, err_msg=layer)
    reinitialised = {
        layer: reason for layers in transfer.reinitialised.values() for layer, reason in layers
    }
    assert reinitialised == {
        layer: f"kernel {theirs} in the checkpoint, {ours} here"
        for layer, (theirs, ours) in CLASS_LAYERS.items()
    }
    assert transfer.unused == {}
    log = transfer.summary(run_folder)
    copied = len(source) - len(CLASS_LAYERS)
    assert f"copied {copied} of {len(source)} layers" in log
    backbone = sum(1 for layer in source if "head" not in layer and "pyramid" not in layer)
    assert f"backbone: {backbone} of {backbone} layers copied\n" in log
    assert (
        "classification_head: 0 of 1 layers copied; re-initialised: classification_head/logits "
        "(kernel [512, 4] in the checkpoint, [512, 2] here)" in log
    )
    # The detection class subnet keeps its hidden layers: only its output depends on K.
    assert "class_head: 4 of 5 layers copied; re-initialised: class_head/output" in log


def test_layers_missing_on_either_side_are_listed(checkpoint):
    run_folder, source = checkpoint
    target_config = dataclasses.replace(CONFIG, tasks=("classification",), attention="none")
    target = build_defect_aux_net(target_config)
    transfer = copy_matching_weights(keras.saving.load_model(f"{run_folder}/best.keras"), target)
    # Without attention the backbone's convs still match: all of this model is copied.
    assert transfer.reinitialised == {}
    assert "conv2_block1_se/reduce" in transfer.unused["backbone"]
    assert len(transfer.unused["feature_pyramid"]) == 10  # Lateral and output P2-P5, P6, P7.
    assert "not in this model, unused: backbone (24), feature_pyramid (10)," in transfer.summary("x")
    # The other way round: this model's layers the checkpoint lacks keep their init.
    source_model = target
    grown = build_defect_aux_net(CONFIG)
    transfer = copy_matching_weights(source_model, grown)
    assert ("conv2_block1_se/reduce", "not in the checkpoint") in transfer.reinitialised["backbone"]
    assert transfer.reinitialised["box_head"][0] == ("box_head/hidden_0", "not in the checkpoint")


def test_a_checkpoint_of_another_input_normalisation_is_refused(checkpoint):
    run_folder, _ = checkpoint
    check_init_checkpoint(CONFIG, run_folder)  # Same normalisation: fine.
    caffe = dataclasses.replace(CONFIG, input_normalization="caffe")
    expected = "input_normalization='min_max'.*set DefectAuxNetConfig.input_normalization=min_max"
    with pytest.raises(ConfigError, match=expected) as error:
        check_init_checkpoint(caffe, run_folder)
    assert error.value.field == "DefectAuxNetConfig.input_normalization"
    assert "--" not in str(error.value)


def test_bad_init_checkpoints_are_named(tmp_path, checkpoint):
    with pytest.raises(ValueError, match="nope.*does not exist"):
        checkpoint_file(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="folder without best.keras"):
        checkpoint_file(str(tmp_path))
    (tmp_path / "weights.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="weights.h5.*not a .keras file"):
        checkpoint_file(str(tmp_path / "weights.h5"))
    (tmp_path / "broken.keras").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="broken.keras is not a saved model of this library"):
        check_init_checkpoint(CONFIG, str(tmp_path / "broken.keras"))
    run_folder, _ = checkpoint
    expected = "lies in model_dir=.*, which overwrite=True deletes"
    with pytest.raises(ConfigError, match=expected) as error:
        check_outside(run_folder, run_folder)
    assert error.value.field == "ExperimentConfig.init_checkpoint"
    assert "--" not in str(error.value)
    check_outside(run_folder, str(tmp_path))


def test_a_segdec_checkpoint_reads_back_as_its_own_config(tmp_path):
    from defect_aux_net.models.segdec_config import SegDecConfig
    from defect_aux_net.models.segdec_net import SegDecNet
    from defect_aux_net.training.init_checkpoint import checkpoint_config

    config = SegDecConfig.from_preset("small", num_classes=2)
    path = str(tmp_path / "segdec.keras")
    SegDecNet(config).save(path)
    assert checkpoint_config(path) == config
    check_init_checkpoint(config, path)  # Same input normalisation: accepted.
