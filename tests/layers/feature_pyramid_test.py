import numpy as np

from defect_aux_net.layers.feature_pyramid import FeaturePyramid
from tests.layer_harness import check_layer


def backbone_features(rng, size=64):
    return {
        f"C{level}": rng.normal(size=(2, size // 2**level, size // 2**level, channels)).astype(
            "float32"
        )
        for level, channels in zip((2, 3, 4, 5), (8, 16, 24, 32))
    }


def test_feature_pyramid_levels_and_harness(tmp_path):
    features = backbone_features(np.random.default_rng(0), size=128)
    expected = {f"P{level}": (2, 128 // 2**level, 128 // 2**level, 16) for level in range(2, 8)}
    check_layer(lambda: FeaturePyramid(16, max_level=7), features, tmp_path, expected)


def test_top_down_merge_is_lateral_plus_upsampled_coarser_level():
    features = backbone_features(np.random.default_rng(1))
    layer = FeaturePyramid(4, max_level=5)
    layer(features)
    # Identity output convs expose the merged maps.
    for conv in layer.output_convs:
        kernel = np.zeros((3, 3, 4, 4), np.float32)
        kernel[1, 1] = np.eye(4)
        conv.set_weights([kernel, np.zeros(4, np.float32)])
    outputs = {name: np.array(value) for name, value in layer(features).items()}

    def lateral(level):
        kernel, bias = (np.array(w) for w in layer.lateral_convs[level - 2].weights)
        return features[f"C{level}"] @ kernel[0, 0] + bias

    np.testing.assert_allclose(outputs["P5"], lateral(5), rtol=1e-4, atol=1e-5)
    # Bilinear 2x upsampling (half-pixel centres): interior pixel (1, 1) of the
    # fine map is 0.75 * coarse(0, 0) + 0.25 * coarse(1, 0) along each axis.
    coarse = outputs["P5"][0]
    upsampled_11 = (
        0.5625 * coarse[0, 0] + 0.1875 * coarse[0, 1] + 0.1875 * coarse[1, 0] + 0.0625 * coarse[1, 1]
    )
    np.testing.assert_allclose(
        outputs["P4"][0, 1, 1], lateral(4)[0, 1, 1] + upsampled_11, rtol=1e-4, atol=1e-5
    )
