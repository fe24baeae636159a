import pytest

from defect_aux_net.models.segdec_config import SegDecConfig


@pytest.mark.parametrize(
    "preset, shape, dilation, delta",
    [
        # The reference code (vicoslab/mixed-segdec-net-comind2021): config.py's input
        # sizes, EXPERIMENTS_COMIND.sh's DILATE and DELTA_CLS_LOSS.
        ("kolektorsdd", (1408, 512, 1), 7, 0.01),
        ("dagm", (512, 512, 1), 7, 1.0),
        ("severstal", (256, 1600, 1), 1, 0.1),
    ],
)
def test_dataset_presets_are_the_reference_codes(preset, shape, dilation, delta):
    config = SegDecConfig.from_preset(preset)
    assert (config.input_shape, config.dilation, config.delta) == (shape, dilation, delta)
    # data/dataset.py read_img_resize: grey values / 255, no stretching.
    assert config.resolved_input_normalization == "caffe"
    # The paper's trunk widths, not the small preset's.
    assert config.trunk_channels == (32, 64, 1024)
