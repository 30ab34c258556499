"""The `bgagent` command installed by pip: the same Rust CLI as `cargo install`, run through
the extension (a wheel cannot carry both a binary and the module)."""

import sys

from . import _core


def main() -> None:
    sys.exit(_core.cli_main(sys.argv))
