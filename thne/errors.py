"""The errors a user can act on: bad input, a missing tool, a failed download.

Each stage raises a subclass of :class:`InputError` when the fault lies in what it was given,
with a message that names the file or clip, what is wrong and, where there is one, the fix.
The ``thne`` command prints such an error in a line or two, without a traceback (set
``THNE_DEBUG=1`` to see it); any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class InputError(RuntimeError):
    """A fault in the input, the config or the machine, told in words the user can act on."""
