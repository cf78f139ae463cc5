"""A pickle payload as an attacker would write it: unpickling it runs a shell command, here
one that only creates a marker file, so a test can tell whether it ran."""

from __future__ import annotations

import os
import shlex
from pathlib import Path


class RunsCode:
    """Pickles as ``os.system("touch <marker>")``: whoever unpickles it runs the command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))
