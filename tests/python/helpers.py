"""Helpers shared by the Python tests."""

import linecache
import os
import signal
import subprocess
import sys
import threading
import time
import uuid


def run_clean(argv, cwd, env_extra=None, stdin=""):
    """Runs `argv` in `cwd` without the caller's Anthropic settings (plus `env_extra`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "MODEL_ID"))}
    env.update(env_extra or {})
    return run_with(argv, cwd, env, stdin)


def run_with(argv, cwd, env, stdin=""):
    """Runs `argv` in `cwd` with exactly `env` and `stdin`; output captured, 120 s at most."""
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def new_marker() -> str:
    """A token no other process on the machine has in its command line."""
    return f"bgmark{uuid.uuid4().hex}"


def processes_with(marker: str) -> list[str]:
    """Command lines of live processes (other than this one) that contain `marker`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == str(os.getpid()):
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                line = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in line:
            found.append(line)
    return found


def wait_until(condition, what: str, timeout: float = 30.0):
    """Polls `condition()` until it returns something true, and returns that.

    Fails with a message naming `what` if that has not happened within `timeout` seconds; the
    deadline only bounds a failure, so it is generous.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting until {what}")
        time.sleep(0.01)


def _main_thread_blocked_in(call: str) -> bool:
    """True if the main thread sleeps while a line holding `call` is on its Python stack (the
    innermost frame or one that called it): it is inside that call, not about to make it."""
    main = threading.main_thread()
    frame = sys._current_frames().get(main.ident)
    while frame is not None:
        if call in linecache.getline(frame.f_code.co_filename, frame.f_lineno):
            break
        frame = frame.f_back
    if frame is None:
        return False
    try:
        with open(f"/proc/self/task/{main.native_id}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state in ("S", "D")


def sigint_once_blocked_in(call: str, timeout: float = 30.0) -> threading.Thread:
    """Sends SIGINT to this process (as Ctrl-C would) once the main thread is blocked in `call`.

    Runs on its own thread; returns it. The main thread must count as blocked on two checks in
    a row: a thread that only waits for the GIL (held by this one) wakes as soon as this thread
    sleeps between the checks, so it no longer counts.
    """

    def blocked_twice() -> bool:
        if not _main_thread_blocked_in(call):
            return False
        time.sleep(0.01)
        return _main_thread_blocked_in(call)

    return _sigint_once(blocked_twice, f"the main thread blocks in {call}", timeout)


def sigint_once_running(marker: str, timeout: float = 30.0) -> threading.Thread:
    """Sends SIGINT to this process once a process with `marker` in its command line runs.

    Runs on its own thread; returns it.
    """

    return _sigint_once(lambda: processes_with(marker), f"a process with {marker} runs", timeout)


def _sigint_once(condition, what: str, timeout: float) -> threading.Thread:
    """Sends SIGINT to this process from a thread of its own once `condition()` holds; if it
    never does, says so on stderr (the test then fails waiting for the interrupt)."""

    def send() -> None:
        try:
            wait_until(condition, what, timeout)
        except AssertionError as e:
            print(e, file=sys.stderr)
            return
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def assert_valid(messages) -> None:
    """Every tool_use is answered by a tool_result in the next message."""
    for i, m in enumerate(messages):
        if m["role"] != "assistant" or isinstance(m["content"], str):
            continue
        asked = [b["id"] for b in m["content"] if b["type"] == "tool_use"]
        if asked:
            answered = [b["tool_use_id"] for b in messages[i + 1]["content"]]
            assert answered == asked


# The six background tools a loop of one's own and `bgagent mcp` offer, in their order.
SIX = [
    "background_run",
    "check_background",
    "read_background",
    "wait_background",
    "kill_background",
    "list_background",
]
