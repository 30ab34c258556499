"""Start slow commands in the background, keep working, and collect each result once.

Run:  python examples/background_tasks.py
"""

import bgagent

with bgagent.BackgroundManager(timeout=3) as bg:
    print(bg.run("sleep 1 && echo 'dependencies installed'"))
    print(bg.run("sleep 2 && echo '3 tests passed'"))
    print(bg.run("sleep 30"))  # too slow: it will time out
    print(bg.run("echo 'a build error' >&2; exit 2"))

    # The model would keep working here; an agent drains the queue before each model call.
    print("\nworking while they run...\n" + bg.check() + "\n")

    # An empty list means nothing is running and nothing is left to collect.
    while notes := bg.wait_for_notifications(timeout=15):
        for note in notes:
            code = note["exit_code"]
            print(f"[bg:{note['task_id']}] {note['status']} (exit {code}): {note['result']}")
