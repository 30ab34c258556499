"""Content blocks that read both ways: `block.text` like the anthropic SDK, `block["text"]`
like a dict. The lesson's REPL code (`hasattr(block, "text")`) works on them unchanged."""

from __future__ import annotations

from typing import Any


class Block(dict):
    """A dict whose keys are also attributes; a missing key is a missing attribute."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def model_dump(self, **_: Any) -> dict[str, Any]:
        """A plain dict, as the SDK's objects give."""
        return dict(self)
