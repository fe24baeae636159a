"""synthetic_defects: procedurally generated textured surfaces with labelled defects."""

import dataclasses

import tensorflow_datasets as tfds

from defect_aux_net.datasets import synthetic
from defect_aux_net.datasets.features import defect_features


@dataclasses.dataclass(eq=False)
class SyntheticDefectsConfig(tfds.core.BuilderConfig):
    """A synthetic dataset variant: what the images look like and how many there are.

    Attributes:
      spec: image size, channels, defect-free fraction and seed of the generator.
      num_train: number of training examples.
      num_validation: number of validation examples.
      num_test: number of test examples.
    """

    spec: synthetic.SyntheticSpec = dataclasses.field(
        default_factory=synthetic.SyntheticSpec
    )
    num_train: int = 4000
    num_validation: int = 500
    num_test: int = 500


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for synthetic_defects: no download, deterministic from a seed."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "1.1.0": "quickstart: defects twice as thick; the other configs are unchanged.",
    }
    BUILDER_CONFIGS = [
        SyntheticDefectsConfig(
            name="default",
            description="128x128 grey, 4,000/500/500 images, half of them defect-free.",
        ),
        SyntheticDefectsConfig(
            name="small",
            description="128x128 grey, 512/128/128 images: the quickstart and tests.",
            num_train=512,
            num_validation=128,
            num_test=128,
        ),
        SyntheticDefectsConfig(
            name="quickstart",
            description=(
                "128x128 grey, 1,024/256/256 images, defects at 3x contrast and "
                "twice as thick: learnable from scratch in minutes on a CPU."
            ),
            spec=synthetic.SyntheticSpec(defect_contrast=3.0, defect_thickness=2.0),
            num_train=1024,
            num_validation=256,
            num_test=256,
        ),
        SyntheticDefectsConfig(
            name="rgb",
            description="128x128 RGB with a colour cast per image, 4,000/500/500 images.",
            spec=synthetic.SyntheticSpec(channels=3),
        ),
        SyntheticDefectsConfig(
            name="rare_defects",
            description="128x128 grey, 4,000/500/500 images, 90% defect-free.",
            spec=synthetic.SyntheticSpec(defect_free_fraction=0.9),
        ),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "default"

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=defect_features(
                synthetic.CLASS_NAMES, channels=self.builder_config.spec.channels
            ),
            homepage="https://github.com/defect-aux-net/defect-aux-net",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # Nothing to download: every example is generated.
        config = self.builder_config
        return {
            "train": self._generate_examples("train", config.num_train),
            "validation": self._generate_examples("validation", config.num_validation),
            "test": self._generate_examples("test", config.num_test),
        }

    def _generate_examples(self, split: str, num_examples: int):
        for index in range(num_examples):
            example = synthetic.generate_example(index, split, self.builder_config.spec)
            yield example["image_id"], example
