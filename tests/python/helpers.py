"""Helpers shared by the Python tests."""

import os
import subprocess


def run_clean(argv, cwd, env_extra=None, stdin=""):
    """Runs `argv` in `cwd` without the caller's Anthropic settings (plus `env_extra`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "MODEL_ID"))}
    env.update(env_extra or {})
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
