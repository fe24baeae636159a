"""absl-flag launch scripts: python -m launch.<name>, or the defect-aux-net-<name> commands."""

import os
import sys

# The TFDS builders of tfds_builders/ are not installed (TFDS cannot read the resources
# of the namespace package an editable install makes of their `tfds new` layout; see
# setup.py): put the repository root on the path so that the scripts, and the
# installed commands, find them from any directory.
_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_REPOSITORY, "tfds_builders")) and _REPOSITORY not in sys.path:
    sys.path.append(_REPOSITORY)


def run_command(main, module_name: str):
    """`app.run(main)` for the installed `defect-aux-net-<name>` command of a script.

    absl's --help lists the key flags of the module that `sys.argv[0]` names; for an
    installed command that is the wrapper pip wrote, which defines none.
    """
    from absl import app, flags

    for flag in flags.FLAGS.get_key_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main)
