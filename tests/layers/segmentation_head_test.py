import numpy as np

from defect_aux_net.layers.segmentation_head import SegmentationHead
from tests.layer_harness import check_layer


def pyramid(rng, size=64, channels=8):
    return {
        f"P{level}": rng.normal(size=(2, size // 2**level, size // 2**level, channels)).astype(
            "float32"
        )
        for level in (2, 3, 4, 5)
    }


def test_segmentation_head_returns_masks_at_input_scale(tmp_path):
    features = pyramid(np.random.default_rng(0))
    check_layer(
        lambda: SegmentationHead(num_classes=3, channels=8, dropout=0.0),
        features,
        tmp_path,
        expected_output_shape=(2, 64, 64, 3),
    )


def test_segmentation_head_block_count_per_level():
    layer = SegmentationHead(num_classes=1, channels=4)
    layer(pyramid(np.random.default_rng(0)))
    names = [conv.name for conv in layer.refine_convs]
    # P5 needs three 2x steps to 1/4 scale, P4 two, P3 one, P2 none (one conv).
    assert names == [
        "P2_block0_conv",
        "P3_block0_conv",
        "P4_block0_conv",
        "P4_block1_conv",
        "P5_block0_conv",
        "P5_block1_conv",
        "P5_block2_conv",
    ]


def test_segmentation_head_batch_norm_momentum_survives_its_config():
    layer = SegmentationHead(num_classes=1, channels=4, batch_norm_momentum=0.9)
    restored = SegmentationHead.from_config(layer.get_config())
    assert {norm.momentum for norm in restored.refine_norms} == {0.9}
