"""What a tool use looks like in the loops people write: a name and its arguments, an
Anthropic tool-use block (an SDK object or a dict), or an OpenAI tool call (the same)."""

from __future__ import annotations

from typing import Any


def name_and_arguments(tool_use: Any, arguments: Any) -> tuple[str, Any]:
    """`(name, arguments)` of a tool use; the arguments as given (a dict, or JSON text)."""
    if isinstance(tool_use, str):
        return tool_use, {} if arguments is None else arguments
    if arguments is not None:
        raise TypeError("arguments go with a tool name, not with a tool-use block")
    get = tool_use.get if isinstance(tool_use, dict) else lambda key: getattr(tool_use, key, None)
    function = get("function")  # OpenAI: {"type": "function", "function": {name, arguments}}
    if function is not None:
        fget = function.get if isinstance(function, dict) else lambda k: getattr(function, k, None)
        name, arguments = fget("name"), fget("arguments")
    else:  # Anthropic: {"type": "tool_use", "id", "name", "input"}
        name, arguments = get("name"), get("input")
    if not isinstance(name, str):
        raise TypeError(
            "a tool use is a tool name, an Anthropic tool_use block (name, input) or an "
            f"OpenAI tool call (function.name, function.arguments), not {type(tool_use).__name__}"
        )
    return name, {} if arguments is None else arguments
