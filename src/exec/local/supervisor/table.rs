//! The supervisor's bookkeeping and its decisions, apart from its system calls: which tasks
//! it holds and in what state, and what to do on each order or event. A decision returns
//! what is to be done ([`Do`]); what it must know of the system first (a shell's exit status,
//! whether a group is empty) it asks through a function it is given. The server makes the
//! calls; the rules can be checked here with plain values.

use super::protocol::{Report, Start};
use crate::exec::local::procs::Proc;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// A release whose group will not empty is answered anyway after this long.
pub const RELEASE_BOUND: Duration = Duration::from_secs(3);
/// A releasing group still not empty after this long is held by a member whose parent left
/// the group: a sweep kills that parent.
const STUCK_AFTER: Duration = Duration::from_millis(50);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running,
    /// The shell exited, leaving processes in its group; the owner has not released it.
    Exited,
    /// The owner is done: the group is being emptied and reaped.
    Releasing(Instant),
}

/// One started task: its shell (pid and group number) and what the server holds of it (`H`:
/// a pidfd).
struct Task<H> {
    pid: i32,
    shell: H,
    state: State,
}

/// What the server is to do, in the order given.
#[derive(Debug, PartialEq, Eq)]
pub enum Do {
    Report(Report),
    /// Signal the group whose number is this (a task's shell's pid).
    SignalGroup {
        pgid: i32,
        signal: i32,
    },
    /// Stop watching this task's shell for its exit.
    Unwatch(u64),
    /// Look for orphans as soon as the rate of sweeps allows.
    SweepSoon,
}

/// What an exited, unreaped child of ours is, to the SIGCHLD handling.
#[derive(Debug, PartialEq, Eq)]
pub enum Waitable {
    /// The shell of a running task: its exit is taken now.
    RunningShell(u64),
    /// The shell of a task being released: its group's dead are reaped.
    ReleasingShell(i32),
    /// Anything else: for a sweep.
    Other,
}

/// What a sweep does with a child of ours that is not a task's shell.
#[derive(Debug, PartialEq, Eq)]
pub enum Orphan {
    /// In the group or session of a task not released: the task may still read its output,
    /// and its release ends it (its dead keep the group's number taken until then).
    Spare,
    /// Dead: reap it.
    Reap,
    /// Alive, of a task that is over: kill it and everything below it.
    Kill,
}

/// The tasks, and the starts read but not made yet (`Q`: what comes with each, its pipes).
pub struct Table<H, Q> {
    tasks: HashMap<u64, Task<H>>,
    /// The tasks' shells: pid to token.
    shells: HashMap<i32, u64>,
    /// Tokens of the tasks in `State::Releasing`, so each wake-up looks only at those.
    releasing: HashSet<u64>,
    starts: VecDeque<(Start, Q)>,
}

impl<H, Q> Table<H, Q> {
    pub fn new() -> Self {
        Table {
            tasks: HashMap::new(),
            shells: HashMap::new(),
            releasing: HashSet::new(),
            starts: VecDeque::new(),
        }
    }

    pub fn queue(&mut self, start: Start, with: Q) {
        self.starts.push_back((start, with));
    }

    /// Starts read and not made yet.
    pub fn queued(&self) -> usize {
        self.starts.len()
    }

    pub fn next_start(&mut self) -> Option<(Start, Q)> {
        self.starts.pop_front()
    }

    /// A task's shell was started.
    pub fn started(&mut self, token: u64, pid: i32, shell: H) {
        self.tasks.insert(token, Task { pid, shell, state: State::Running });
        self.shells.insert(pid, token);
    }

    /// What the server holds of a task's shell, while the task is known.
    pub fn shell(&self, token: u64) -> Option<&H> {
        self.tasks.get(&token).map(|t| &t.shell)
    }

    /// Whether a task is being released (the server then looks again soon).
    pub fn releasing(&self) -> bool {
        !self.releasing.is_empty()
    }

    /// A task's shell exited. Only a running task's exit is taken: `take_exit` (given the
    /// shell's pid) stops watching it, reaps it, and says its wait status and whether nothing
    /// else is left of its group. Then the task is over here; otherwise what is left keeps
    /// the group's number taken (its dead are not reaped) until the owner releases the task.
    pub fn shell_exited(
        &mut self,
        token: u64,
        take_exit: impl FnOnce(i32, &H) -> (i32, bool),
    ) -> Vec<Do> {
        let Some(task) = self.tasks.get_mut(&token) else {
            return Vec::new();
        };
        if task.state != State::Running {
            return Vec::new();
        }
        let (status, gone) = take_exit(task.pid, &task.shell);
        task.state = State::Exited;
        let mut todo = Vec::new();
        if gone {
            self.forget(token);
            todo.push(Do::SweepSoon); // what it left outside its group has come to us
        }
        todo.push(Do::Report(Report::Exited { token, status, gone }));
        todo
    }

    /// The owner's signal reaches the group until the task is released: until then something
    /// of the group is unreaped (the shell, or the dead it left), so its number is the task's.
    pub fn signal(&self, token: u64, signal: i32) -> Option<Do> {
        let task = self.tasks.get(&token)?;
        let releasing = matches!(task.state, State::Releasing(_));
        (!releasing).then_some(Do::SignalGroup { pgid: task.pid, signal })
    }

    /// The owner is done with a task: SIGKILL to its group, then [`Table::progress_releases`]
    /// answers once the group is empty. A start still queued never starts; an unknown task
    /// (nothing was left of it) is answered at once.
    pub fn release(&mut self, token: u64, now: Instant) -> Vec<Do> {
        if let Some(queued) = self.starts.iter().position(|(s, _)| s.token == token) {
            self.starts.remove(queued);
            let failed = Report::Failed { token, errno: libc::ECANCELED };
            return vec![Do::Report(failed), Do::Report(Report::Released { token })];
        }
        let Some(task) = self.tasks.get_mut(&token) else {
            return vec![Do::Report(Report::Released { token })];
        };
        let mut todo = Vec::new();
        if task.state == State::Running {
            // Released before its exit was seen (the owner gave up on it): it ends now.
            todo.push(Do::Unwatch(token));
        }
        task.state = State::Releasing(now);
        self.releasing.insert(token);
        // The group cannot be a stranger's: what is left of it is unreaped.
        todo.push(Do::SignalGroup { pgid: task.pid, signal: libc::SIGKILL });
        todo
    }

    /// Looks at each releasing group: `emptied` (given the group's number) reaps its dead and
    /// says whether none of it is left. An empty group, or one past [`RELEASE_BOUND`], is
    /// answered and its task forgotten.
    pub fn progress_releases(
        &mut self,
        now: Instant,
        mut emptied: impl FnMut(i32) -> bool,
    ) -> Vec<Do> {
        let mut done = Vec::new();
        let mut stuck = false;
        for &token in &self.releasing {
            let Some(task) = self.tasks.get(&token) else {
                continue;
            };
            let State::Releasing(since) = task.state else {
                continue;
            };
            let waited = now.saturating_duration_since(since);
            if emptied(task.pid) || waited >= RELEASE_BOUND {
                done.push(token);
            } else if waited >= STUCK_AFTER {
                stuck = true;
            }
        }
        let mut todo = Vec::new();
        if stuck {
            todo.push(Do::SweepSoon);
        }
        if done.is_empty() {
            return todo;
        }
        for token in &done {
            self.forget(*token);
        }
        todo.push(Do::SweepSoon); // what the tasks left outside their groups has come to us
        todo.extend(done.into_iter().map(|token| Do::Report(Report::Released { token })));
        todo
    }

    /// What a waitable child of ours is.
    pub fn waitable(&self, pid: i32) -> Waitable {
        let Some(&token) = self.shells.get(&pid) else {
            return Waitable::Other;
        };
        match self.tasks.get(&token).map(|t| t.state) {
            Some(State::Running) => Waitable::RunningShell(token),
            Some(State::Releasing(_)) => Waitable::ReleasingShell(pid),
            _ => Waitable::Other,
        }
    }

    /// Whether `pid` is a task's shell (a sweep leaves those alone).
    pub fn is_shell(&self, pid: i32) -> bool {
        self.shells.contains_key(&pid)
    }

    /// The groups of the tasks not being released: a sweep spares their members.
    pub fn live_groups(&self) -> HashSet<i32> {
        self.tasks
            .values()
            .filter(|t| !matches!(t.state, State::Releasing(_)))
            .map(|t| t.pid)
            .collect()
    }

    /// Every task's group, whatever its state: what the owner's death ends.
    pub fn groups(&self) -> Vec<i32> {
        self.tasks.values().map(|t| t.pid).collect()
    }

    fn forget(&mut self, token: u64) {
        self.releasing.remove(&token);
        if let Some(task) = self.tasks.remove(&token) {
            // The number may already be a newer task's shell (the old one was reaped).
            if self.shells.get(&task.pid) == Some(&token) {
                self.shells.remove(&task.pid);
            }
        }
    }
}

/// What a sweep does with `orphan`, a child of ours that is not a task's shell, given the
/// groups of the live tasks ([`Table::live_groups`]).
pub fn judge(live_groups: &HashSet<i32>, orphan: &Proc) -> Orphan {
    if live_groups.contains(&orphan.pgrp) || live_groups.contains(&orphan.session) {
        Orphan::Spare
    } else if orphan.zombie {
        Orphan::Reap
    } else {
        Orphan::Kill
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    type Plain = Table<(), ()>;

    fn start(token: u64) -> Start {
        Start {
            token,
            nofile: 1024,
            workdir: PathBuf::from("/"),
            command: "true".into(),
            env: None,
        }
    }

    fn exited(token: u64, status: i32, gone: bool) -> Do {
        Do::Report(Report::Exited { token, status, gone })
    }

    fn released(token: u64) -> Do {
        Do::Report(Report::Released { token })
    }

    fn kill(pgid: i32) -> Do {
        Do::SignalGroup { pgid, signal: libc::SIGKILL }
    }

    #[test]
    fn a_shell_that_leaves_nothing_ends_its_task_with_its_exit() {
        let mut table = Plain::new();
        table.started(1, 100, ());
        assert_eq!(table.waitable(100), Waitable::RunningShell(1));
        let asked = std::cell::Cell::new(None);
        let todo = table.shell_exited(1, |pid, _| {
            asked.set(Some(pid));
            (0, true)
        });
        assert_eq!(asked.get(), Some(100));
        assert_eq!(todo, [Do::SweepSoon, exited(1, 0, true)]);
        // Forgotten: nothing to signal, a second exit is ignored, a release answered at once.
        assert_eq!(table.signal(1, libc::SIGTERM), None);
        assert_eq!(table.shell_exited(1, |_, _| unreachable!()), []);
        assert_eq!(table.waitable(100), Waitable::Other);
        assert!(!table.is_shell(100));
        assert_eq!(table.release(1, Instant::now()), [released(1)]);
        assert!(table.groups().is_empty());
    }

    #[test]
    fn a_shell_that_leaves_its_group_keeps_the_task_until_released() {
        let mut table = Plain::new();
        table.started(2, 200, ());
        assert_eq!(table.shell_exited(2, |_, _| (256, false)), [exited(2, 256, false)]);
        // Its exit is taken once; the group's number is still the task's, so signals reach it.
        assert_eq!(table.shell_exited(2, |_, _| unreachable!()), []);
        let term = Do::SignalGroup { pgid: 200, signal: libc::SIGTERM };
        assert_eq!(table.signal(2, libc::SIGTERM), Some(term));
        // Its dead are left for the sweep, which spares the group's members.
        assert_eq!(table.waitable(200), Waitable::Other);
        assert!(table.live_groups().contains(&200));
        // Released: no watch to stop (the shell has exited), the group killed, and answered
        // once empty.
        let now = Instant::now();
        assert_eq!(table.release(2, now), [kill(200)]);
        assert!(table.releasing());
        assert_eq!(table.signal(2, libc::SIGTERM), None, "no signal while it is released");
        assert_eq!(table.progress_releases(now, |_| false), []);
        assert_eq!(table.progress_releases(now, |pgid| pgid == 200), [Do::SweepSoon, released(2)]);
        assert!(!table.releasing());
        assert!(table.groups().is_empty());
    }

    #[test]
    fn a_running_task_released_stops_being_watched_and_its_group_is_killed() {
        let mut table = Plain::new();
        table.started(3, 300, ());
        let now = Instant::now();
        assert_eq!(table.release(3, now), [Do::Unwatch(3), kill(300)]);
        // Its shell's death is now the release's to reap, not an exit to report.
        assert_eq!(table.waitable(300), Waitable::ReleasingShell(300));
        assert_eq!(table.shell_exited(3, |_, _| unreachable!()), []);
        assert!(!table.live_groups().contains(&300));
        assert_eq!(table.groups(), [300]);
    }

    #[test]
    fn a_group_that_will_not_empty_is_swept_then_answered_after_the_bound() {
        let mut table = Plain::new();
        table.started(4, 400, ());
        let since = Instant::now();
        table.release(4, since);
        assert_eq!(table.progress_releases(since + STUCK_AFTER / 2, |_| false), []);
        assert_eq!(table.progress_releases(since + STUCK_AFTER, |_| false), [Do::SweepSoon]);
        let todo = table.progress_releases(since + RELEASE_BOUND, |_| false);
        assert_eq!(todo, [Do::SweepSoon, released(4)]);
        assert!(!table.releasing());
    }

    #[test]
    fn a_start_released_while_queued_never_starts() {
        let mut table = Plain::new();
        table.queue(start(5), ());
        table.queue(start(6), ());
        let failed = Do::Report(Report::Failed { token: 5, errno: libc::ECANCELED });
        assert_eq!(table.release(5, Instant::now()), [failed, released(5)]);
        assert_eq!(table.queued(), 1);
        assert_eq!(table.next_start().map(|(s, ())| s.token), Some(6));
        assert_eq!(table.release(99, Instant::now()), [released(99)], "unknown: answered");
    }

    #[test]
    fn a_reused_pid_stays_the_newer_shells() {
        let mut table = Plain::new();
        table.started(7, 700, ());
        assert_eq!(table.shell_exited(7, |_, _| (0, false)), [exited(7, 0, false)]);
        // The old shell was reaped, so its number went to a newer task's shell.
        table.started(8, 700, ());
        let now = Instant::now();
        table.release(7, now);
        table.progress_releases(now, |_| true);
        assert!(table.is_shell(700));
        assert_eq!(table.waitable(700), Waitable::RunningShell(8));
    }

    #[test]
    fn the_owners_death_reaches_every_task_in_every_state() {
        let mut table = Plain::new();
        table.started(1, 100, ());
        table.started(2, 200, ());
        table.started(3, 300, ());
        table.shell_exited(2, |_, _| (0, false));
        table.release(3, Instant::now());
        let mut groups = table.groups();
        groups.sort();
        assert_eq!(groups, [100, 200, 300]);
    }

    #[test]
    fn a_sweep_spares_the_live_tasks_orphans_only() {
        let live = HashSet::from([100]);
        let proc = |pgrp, session, zombie| Proc { pid: 999, ppid: 1, pgrp, session, zombie };
        assert_eq!(judge(&live, &proc(100, 50, false)), Orphan::Spare, "in a live group");
        assert_eq!(judge(&live, &proc(999, 100, false)), Orphan::Spare, "in a live session");
        assert_eq!(judge(&live, &proc(100, 100, true)), Orphan::Spare, "a live group's dead");
        assert_eq!(judge(&live, &proc(999, 999, true)), Orphan::Reap);
        assert_eq!(judge(&live, &proc(200, 200, false)), Orphan::Kill, "left its task's session");
    }
}
