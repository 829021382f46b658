"""The files the product ships with its code: templates, migrations, the panel's static files.

They are package data (pyproject.toml lists them), found through `importlib.resources`, so the
same call finds them in a checkout, in an editable install and in a wheel installed anywhere,
whatever the working directory.
"""

from __future__ import annotations

import atexit
from contextlib import ExitStack
from importlib.resources import as_file, files
from pathlib import Path

# as_file() may extract a resource to a temporary file (a package inside a zip); those stay
# for the life of the process, since the paths are kept in module-level names.
_extracted = ExitStack()
atexit.register(_extracted.close)


def bundled(package: str, *parts: str) -> Path:
    """The file or folder `parts` shipped inside `package`, as a path on disk
    (`bundled("templates", "scripts")`)."""
    ref = files(package)
    for part in parts:
        ref = ref / part
    return _extracted.enter_context(as_file(ref))
