"""bgagent: background tasks for coding agents, with a Rust core.

`BackgroundManager` runs shell commands in the background and queues one notification per
finished task; `Agent` is an agent loop that drains that queue before each model call.
`bgagent.s08` is the lesson's module, name for name.
"""

import atexit

from ._blocks import Block
from ._core import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BackgroundManager,
    BadRequestError,
    Client,
    ConfigError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    __version__,
    _shutdown_all,
)
from .agent import Agent

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
    "Block",
    "Client",
    "ConfigError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "__version__",
]

# Tasks still running when the interpreter exits are killed with their process groups,
# so nothing is left behind.
atexit.register(_shutdown_all)
