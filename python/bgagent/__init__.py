"""bgagent: background tasks for coding agents, with a Rust core.

`BackgroundManager` runs shell commands in the background and queues one notification per
finished task; drain the queue before each model call to show the model what finished.
"""

import atexit

from ._core import BackgroundManager, __version__, _shutdown_all

__all__ = ["BackgroundManager", "__version__"]

# Tasks still running when the interpreter exits are killed with their process groups,
# so nothing is left behind.
atexit.register(_shutdown_all)
