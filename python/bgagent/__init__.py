"""bgagent: background tasks for coding agents, with a Rust core.

`BackgroundManager` runs shell commands in the background and queues one notification per
finished task; `Agent` is an agent loop that drains that queue before each model call.
`bgagent.s08` is the lesson's module, name for name.
"""

import atexit
import os
import sys

from ._blocks import Block
from ._core import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BgagentError,
    Client,
    ConfigError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ScriptedClient,
    __version__,
    _set_supervisor,
    _shutdown_all,
    results_block,
)
from ._types import Notification, StoredTask, TaskEntry, TaskInfo
from .agent import Agent
from .background import BackgroundManager, Notifications
from .timeline import Timeline

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "Agent",
    "AuthenticationError",
    "BackgroundManager",
    "BadRequestError",
    "BgagentError",
    "Block",
    "Client",
    "ConfigError",
    "InternalServerError",
    "NotFoundError",
    "Notification",
    "Notifications",
    "PermissionDeniedError",
    "RateLimitError",
    "ScriptedClient",
    "StoredTask",
    "TaskEntry",
    "TaskInfo",
    "Timeline",
    "__version__",
    "results_block",
]

# Tasks still running when the interpreter exits are killed with their process groups,
# so nothing is left behind.
atexit.register(_shutdown_all)

# If this process dies without exiting (SIGKILL, a crashed kernel), a small supervisor
# process (this interpreter again) stops whatever its tasks left running. Only where
# sys.executable really is an interpreter (not a frozen app or an embedding server).
# It starts isolated (-I -S, in /, with an empty environment) and loads this very extension
# by its path, so nothing in the working directory, PYTHONPATH, the user's site-packages or
# the environment can change the code it runs (see _supervisor.py).
_interpreter = os.path.basename(sys.executable or "")
if _interpreter.startswith("python") and not getattr(sys, "frozen", False):
    from ._supervisor import command as _supervisor_command

    _set_supervisor(_supervisor_command(sys.executable))
    del _supervisor_command
del atexit, os, sys, _interpreter


def __dir__() -> list[str]:
    # The public API only (the submodules and helpers stay reachable, just not listed).
    return sorted(__all__)
