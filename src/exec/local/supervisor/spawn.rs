//! Starting a task's shell from the supervisor, the way posix_spawn does it (a child that
//! shares our memory and runs only until exec, while we wait), plus the steps posix_spawn
//! cannot take: the child becomes a subreaper, so orphans of the task stay with the task.
//!
//! The child runs on its own stack and calls only async-signal-safe functions; every signal
//! is blocked around the clone so no handler of ours can run in it.

use std::ffi::{c_int, c_void, CString};
use std::os::fd::RawFd;
use std::ptr;

const STACK_SIZE: usize = 64 * 1024;

/// Everything the child needs, prepared before the clone (the child must not allocate).
pub struct Plan<'a> {
    pub program: CString,
    pub argv: Vec<CString>,
    pub env: &'a [CString],
    pub workdir: CString,
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// The soft open-file limit the task gets (the user's, not the one we raised).
    pub nofile: u64,
}

struct ChildArgs {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    workdir: *const libc::c_char,
    fds: [RawFd; 3],
    nofile: libc::rlim_t,
    not_default: *const c_int,
    not_default_len: usize,
    /// Set by the child when a step fails; read after it has exited.
    errno: c_int,
}

/// Starts children, one at a time, on a reusable stack.
pub struct Spawner {
    stack: Vec<u8>,
    /// Signals whose disposition is not the default here (ignored, or with a handler): the
    /// child resets these. Looked up once, so a start costs a few calls, not sixty-four.
    not_default: Vec<c_int>,
}

impl Spawner {
    /// Call once the process's signal dispositions are final.
    pub fn new() -> Self {
        let not_default = (1..65)
            .filter(|&sig| {
                // SAFETY: reading a disposition into a zeroed struct.
                unsafe {
                    let mut current: libc::sigaction = std::mem::zeroed();
                    libc::sigaction(sig, ptr::null(), &mut current) == 0
                        && current.sa_sigaction != libc::SIG_DFL
                }
            })
            .collect();
        Spawner { stack: vec![0; STACK_SIZE], not_default }
    }

    /// Starts the plan; returns the child's pid (our unreaped child) or an errno.
    pub fn spawn(&mut self, plan: &Plan) -> Result<i32, i32> {
        let argv: Vec<*const libc::c_char> =
            plan.argv.iter().map(|a| a.as_ptr()).chain([ptr::null()]).collect();
        let envp: Vec<*const libc::c_char> =
            plan.env.iter().map(|e| e.as_ptr()).chain([ptr::null()]).collect();
        let mut args = ChildArgs {
            program: plan.program.as_ptr(),
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            workdir: plan.workdir.as_ptr(),
            fds: [plan.stdin, plan.stdout, plan.stderr],
            nofile: plan.nofile as libc::rlim_t,
            not_default: self.not_default.as_ptr(),
            not_default_len: self.not_default.len(),
            errno: 0,
        };
        // SAFETY: the child shares our memory but we are suspended until it execs or exits
        // (CLONE_VFORK), so `args` and the stack outlive its use of them; it runs with every
        // signal blocked until it has reset their dispositions.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            // The stack grows down: hand over its top, 16-byte aligned.
            let top = self.stack.as_mut_ptr().add(STACK_SIZE);
            let top = top.sub(top as usize % 16);
            let pid = libc::clone(
                child_main,
                top.cast(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (&mut args as *mut ChildArgs).cast(),
            );
            let clone_errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut());
            if pid < 0 {
                return Err(clone_errno);
            }
            let errno = ptr::read_volatile(&args.errno);
            if errno != 0 {
                // It never ran the command: reap it here.
                libc::waitpid(pid, ptr::null_mut(), 0);
                return Err(errno);
            }
            Ok(pid)
        }
    }
}

/// The child between clone and exec.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's ChildArgs, alive while the parent is suspended; only
    // async-signal-safe calls follow.
    unsafe {
        let args = &mut *(arg as *mut ChildArgs);
        // Handlers of ours must not run here, and ignored signals (SIGINT, SIGHUP, SIGPIPE in
        // the supervisor) must not stay ignored in the task: every signal back to default.
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for &sig in std::slice::from_raw_parts(args.not_default, args.not_default_len) {
            libc::sigaction(sig, &dfl, ptr::null_mut());
        }
        let fail = |args: &mut ChildArgs| -> c_int {
            ptr::write_volatile(&mut args.errno, *libc::__errno_location());
            libc::_exit(127)
        };
        // A session of its own: its own process group, and no controlling terminal, so a
        // task that reads the terminal fails at once instead of stopping on SIGTTIN.
        if libc::setsid() < 0 {
            return fail(args);
        }
        // Orphans of the task come to its shell, not to us, while the shell lives.
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        if libc::chdir(args.workdir) != 0 {
            return fail(args);
        }
        for (target, &fd) in args.fds.iter().enumerate() {
            if libc::dup2(fd, target as c_int) < 0 {
                return fail(args);
            }
        }
        let mut current: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut current) == 0
            && args.nofile <= current.rlim_max
        {
            let user = libc::rlimit { rlim_cur: args.nofile, rlim_max: current.rlim_max };
            libc::setrlimit(libc::RLIMIT_NOFILE, &user);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, ptr::null_mut());
        libc::execve(args.program, args.argv, args.envp);
        fail(args)
    }
}
