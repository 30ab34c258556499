"""A plain-Python background manager with bgagent's contract, the way the lesson builds it:
one daemon thread per task, `subprocess.run(..., shell=True, capture_output=True)`, and a
lock-guarded list of notifications (plus a condition, so it can wait like ours)."""

from __future__ import annotations

import subprocess
import threading
import uuid


class PeerManager:
    def __init__(self, workdir: str | None = None, timeout: float = 300.0) -> None:
        self.workdir = workdir
        self.timeout = timeout
        self.tasks: dict[str, dict] = {}
        self._queue: list[dict] = []
        self._running = 0
        self._changed = threading.Condition()

    def start(self, command: str) -> str:
        task_id = str(uuid.uuid4())[:8]
        self.tasks[task_id] = {"status": "running", "result": None, "command": command}
        with self._changed:
            self._running += 1
        threading.Thread(target=self._execute, args=(task_id, command), daemon=True).start()
        return task_id

    def run(self, command: str) -> str:
        return f"Background task {self.start(command)} started: {command[:80]}"

    def _execute(self, task_id: str, command: str) -> None:
        code = None
        try:
            r = subprocess.run(
                command,
                shell=True,
                cwd=self.workdir,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=self.timeout,
                check=False,
            )
            output, status, code = (r.stdout + r.stderr).strip()[:50000], "completed", r.returncode
        except subprocess.TimeoutExpired:
            output, status = f"Error: Timeout ({self.timeout:g}s)", "timeout"
        except Exception as e:  # noqa: BLE001 - the lesson reports any failure as text
            output, status = f"Error: {e}", "error"
        output = output or "(no output)"
        self.tasks[task_id].update(status=status, result=output)
        note = {"task_id": task_id, "status": status, "command": command[:80]}
        note.update(result=output[:500], exit_code=code)
        with self._changed:
            self._queue.append(note)
            self._running -= 1
            self._changed.notify_all()

    def check(self, task_id: str | None = None) -> str:
        if task_id:
            t = self.tasks.get(task_id)
            if not t:
                return f"Error: Unknown task {task_id}"
            return f"[{t['status']}] {t['command'][:60]}\n{t.get('result') or '(running)'}"
        lines = [f"{tid}: [{t['status']}] {t['command'][:60]}" for tid, t in self.tasks.items()]
        return "\n".join(lines) if lines else "No background tasks."

    def drain_notifications(self) -> list[dict]:
        with self._changed:
            notes, self._queue = self._queue, []
        return notes

    def wait_for_notifications(self, timeout: float | None = None) -> list[dict]:
        with self._changed:
            self._changed.wait_for(lambda: self._queue or not self._running, timeout)
            notes, self._queue = self._queue, []
        return notes

    def shutdown(self) -> None:
        """Nothing to stop: the lesson's threads cannot be cancelled."""
