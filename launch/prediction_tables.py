"""predictions.csv and predictions.json of a launch.predict run, never stale.

The previous run's tables are deleted before the first row, rows go to
`predictions.partial.csv` as images are done (flushed at least every
`FLUSH_SECONDS`), and only a finished run writes `predictions.json` and renames the
partial CSV to `predictions.csv`. After a crash or kill, `output_dir` holds no
predictions.csv or predictions.json, only the partial CSV of the images done: a table
that exists is complete and from the last run. Paths may be `gs://`.
"""

import csv
import os
import time

import tensorflow as tf
from absl import logging

from defect_aux_net.training import run_files

# Often enough that a kill keeps most rows; rarely enough that a gs:// output, whose
# object is uploaded whole at each flush, stays cheap.
FLUSH_SECONDS = 30


class PredictionTables:
    """Writes the tables of one run into `output_dir`, as a context manager.

    Example:
    ```python
    with PredictionTables(output_dir, class_names) as tables:
        tables.add({"file": ..., "overlay": ..., "is_defective": False, ...})
        tables.finish({"model": ..., "predictions": records})
    ```
    """

    def __init__(self, output_dir: str, class_names):
        self.output_dir = output_dir
        self.class_names = list(class_names)
        self.paths = {
            name: os.path.join(output_dir, f"predictions{name}")
            for name in (".csv", ".json", ".partial.csv")
        }
        self._file = None
        self._writer = None
        self._next_flush = 0.0

    def __enter__(self):
        tf.io.gfile.makedirs(self.output_dir)
        previous = [path for path in self.paths.values() if tf.io.gfile.exists(path)]
        for path in previous:
            tf.io.gfile.remove(path)
        if previous:
            logging.info("Deleted the previous run's %s", ", ".join(previous))
        self._file = tf.io.gfile.GFile(self.paths[".partial.csv"], "w")
        columns = ["file", "overlay", "is_defective"]
        columns += [f"p_{name}" for name in self.class_names] + ["num_boxes"]
        self._writer = csv.DictWriter(self._file, columns, restval="", lineterminator="\n")
        self._writer.writeheader()
        self._next_flush = time.monotonic() + FLUSH_SECONDS
        return self

    def add(self, record: dict):
        """Writes the CSV row of one image's JSON record (with "file" and "overlay")."""
        row = {key: record[key] for key in ("file", "overlay")}
        row["is_defective"] = int(record["is_defective"])
        row |= {f"p_{name}": value for name, value in record.get("probabilities", {}).items()}
        if "boxes" in record:
            row["num_boxes"] = len(record["boxes"])
        self._writer.writerow(row)
        if time.monotonic() >= self._next_flush:
            self._file.flush()
            self._next_flush = time.monotonic() + FLUSH_SECONDS

    def finish(self, summary: dict):
        """Writes predictions.json (`summary`) and renames the partial CSV into place."""
        self._file.close()
        run_files.write_json(summary, self.paths[".json"])
        tf.io.gfile.rename(self.paths[".partial.csv"], self.paths[".csv"], overwrite=True)

    def __exit__(self, *exc_info):
        self._file.close()  # A second close does nothing.
