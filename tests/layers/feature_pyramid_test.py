import numpy as np
import pytest

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


def test_pyramid_from_p3_equals_the_full_pyramid_without_p2():
    features = backbone_features(np.random.default_rng(2))
    full = FeaturePyramid(4, max_level=6)
    from_p3 = FeaturePyramid(4, max_level=6, min_level=3)
    full_outputs = full(features)
    from_p3(features)
    # P2 has its own lateral (C2: 8 channels -> 4) and 3x3 output convs, with biases.
    p2_params = (8 * 4 + 4) + (3 * 3 * 4 * 4 + 4)
    assert full.count_params() - from_p3.count_params() == p2_params
    # P2 is the end of the top-down path: nothing coarser depends on it.
    full_convs = {conv.name: conv for conv in full.lateral_convs + full.output_convs}
    for conv in from_p3.lateral_convs + from_p3.output_convs:
        conv.set_weights(full_convs[conv.name].get_weights())
    from_p3.extra_convs[0].set_weights(full.extra_convs[0].get_weights())
    p3_outputs = from_p3(features)
    assert sorted(p3_outputs) == ["P3", "P4", "P5", "P6"]
    for name, value in p3_outputs.items():
        np.testing.assert_allclose(np.array(value), np.array(full_outputs[name]), rtol=1e-6)


def test_bad_levels_are_refused():
    with pytest.raises(ValueError, match="min_level"):
        FeaturePyramid(4, min_level=1)
    with pytest.raises(ValueError, match="max_level"):
        FeaturePyramid(4, max_level=4)


def test_unsmoothed_p2_is_the_merged_map_and_the_rest_is_unchanged(tmp_path):
    features = backbone_features(np.random.default_rng(3))
    full = FeaturePyramid(4, max_level=5)
    unsmoothed = FeaturePyramid(4, max_level=5, unsmoothed_levels=(2,))
    full_outputs = full(features)
    unsmoothed(features)
    # P2's 3x3 output conv (4 -> 4 channels, with bias) is all that is gone.
    assert full.count_params() - unsmoothed.count_params() == 3 * 3 * 4 * 4 + 4
    full_convs = {conv.name: conv for conv in full.lateral_convs + full.output_convs}
    for conv in unsmoothed.lateral_convs + unsmoothed.output_convs:
        conv.set_weights(full_convs[conv.name].get_weights())
    outputs = {name: np.array(value) for name, value in unsmoothed(features).items()}
    for level in (3, 4, 5):
        np.testing.assert_allclose(
            outputs[f"P{level}"], np.array(full_outputs[f"P{level}"]), rtol=1e-6
        )
    # Unsmoothed P2 is the merged map: what a full pyramid with an identity P2 conv gives.
    kernel = np.zeros((3, 3, 4, 4), np.float32)
    kernel[1, 1] = np.eye(4)
    full.output_convs[0].set_weights([kernel, np.zeros(4, np.float32)])
    np.testing.assert_allclose(outputs["P2"], np.array(full(features)["P2"]), rtol=1e-5, atol=1e-6)
    expected = {f"P{level}": (2, 64 // 2**level, 64 // 2**level, 4) for level in range(2, 6)}
    check_layer(
        lambda: FeaturePyramid(4, max_level=5, unsmoothed_levels=(2,)), features, tmp_path,
        expected,
    )
    with pytest.raises(ValueError, match="unsmoothed_levels"):
        FeaturePyramid(4, min_level=3, unsmoothed_levels=(2,))
