//! One session for every face: the command line and the Python bindings (and tests) say what
//! they want in a [`SessionConfig`], and a [`Session`] assembles the loop from it: model,
//! tools, manager, policy, trace and events. Only what differs between faces (where the
//! conversation lives, which tools run in the face's own language, what is printed) is
//! passed in.

use crate::agent::{Conversation, Drain, Loop, LoopConfig, LoopEvents, LoopPolicy};
use crate::background::{BackgroundManager, Options};
use crate::defaults;
use crate::llm::Model;
use crate::runtime::Interrupt;
use crate::tools::{BuiltinTools, ToolRunner};
use crate::trace::{self, RunInfo, Tracer};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a face chooses for a session; [`SessionConfig::new`] gives the defaults of
/// [`crate::defaults`], the builder methods change one each.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// Where commands run and files are read and written.
    pub workdir: PathBuf,
    /// The model name sent with each request (empty: the face has none).
    pub model: String,
    /// `None`: the lesson's system prompt for `workdir`.
    pub system: Option<String>,
    /// Exactly the lesson's loop and six tools.
    pub mirror: bool,
    /// Commands get the API credentials, and outputs are not redacted (always so in mirror).
    pub pass_api_key: bool,
    /// Production's wait, at the end of a turn, for tasks still running.
    pub max_wait: Duration,
    pub max_tokens: u32,
    /// The timeout of the background tasks of a manager made from this config.
    pub task_timeout: Duration,
    /// At most this many background tasks run at once (`None`: no limit). Mirror mode has
    /// none, as the lesson.
    pub max_running: Option<usize>,
}

impl SessionConfig {
    pub fn new(workdir: impl Into<PathBuf>) -> Self {
        SessionConfig {
            workdir: workdir.into(),
            model: String::new(),
            system: None,
            mirror: false,
            pass_api_key: false,
            max_wait: defaults::MAX_WAIT,
            max_tokens: defaults::MAX_TOKENS,
            task_timeout: defaults::TASK_TIMEOUT,
            max_running: Some(defaults::max_running()),
        }
    }

    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    pub fn system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    pub fn mirror(mut self, mirror: bool) -> Self {
        self.mirror = mirror;
        self
    }

    pub fn pass_api_key(mut self, pass: bool) -> Self {
        self.pass_api_key = pass;
        self
    }

    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.task_timeout = timeout;
        self
    }

    pub fn max_running(mut self, max_running: Option<usize>) -> Self {
        self.max_running = max_running;
        self
    }

    /// Commands do not get the credentials, and their values are redacted from outputs.
    pub fn hide_secrets(&self) -> bool {
        !self.mirror && !self.pass_api_key
    }

    /// The lesson's policy in mirror mode, else production's.
    pub fn policy(&self) -> LoopPolicy {
        match self.mirror {
            true => LoopPolicy::lesson(),
            false => LoopPolicy {
                hide_secrets: self.hide_secrets(),
                ..LoopPolicy::production(self.max_wait)
            },
        }
    }

    pub fn loop_config(&self) -> LoopConfig {
        LoopConfig {
            model: self.model.clone(),
            system: match &self.system {
                Some(system) => system.clone(),
                None => LoopConfig::lesson_system(&self.workdir),
            },
            max_tokens: self.max_tokens,
            policy: self.policy(),
        }
    }

    /// The options of a manager made for this session.
    pub fn manager_options(&self) -> Options {
        Options {
            workdir: Some(self.workdir.clone()),
            timeout: self.task_timeout,
            hide_secrets: self.hide_secrets(),
            max_running: if self.mirror { None } else { self.max_running },
            // The lesson keeps every finished task and its log.
            keep_finished: if self.mirror { None } else { Options::default().keep_finished },
            log_budget: if self.mirror { None } else { Options::default().log_budget },
            ..Options::default()
        }
    }

    /// What a trace of this session says in its header.
    pub fn run_info(&self) -> RunInfo {
        RunInfo {
            mode: if self.mirror { "mirror" } else { "production" }.into(),
            model: self.model.clone(),
            workdir: self.workdir.clone(),
        }
    }

    /// The session with its model and manager (and a tracer, if the run is traced).
    pub fn session<'a>(
        &'a self,
        model: &'a dyn Model,
        manager: &'a BackgroundManager,
        trace: Option<&'a Tracer>,
    ) -> Session<'a> {
        Session { config: self.loop_config(), workdir: &self.workdir, model, manager, trace }
    }
}

/// A session's parts, assembled; each [`Session::turn`] runs the loop once.
pub struct Session<'a> {
    pub config: LoopConfig,
    pub workdir: &'a Path,
    pub model: &'a dyn Model,
    pub manager: &'a BackgroundManager,
    pub trace: Option<&'a Tracer>,
}

/// What one turn works with besides the session: the face's own parts.
pub struct Turn<'t> {
    pub messages: &'t mut dyn Conversation,
    /// The user's text that starts the turn, for the trace.
    pub user: Option<&'t str>,
    pub events: &'t mut dyn LoopEvents,
    /// Polled while waiting; true means Ctrl-C (or a stop) was asked for.
    pub interrupted: Interrupt<'t>,
    /// The manager's drain replaced (a Python subclass's own); `None`: the manager's.
    pub drain: Option<Drain<'t>>,
}

impl Session<'_> {
    /// The built-in tools as this session's policy sets them up.
    pub fn builtin_tools<'t>(&'t self, interrupted: Interrupt<'t>) -> BuiltinTools<'t> {
        BuiltinTools {
            ctx: self.config.policy.tool_context(self.workdir, self.manager, interrupted),
        }
    }

    /// Runs the loop with the built-in tools until the model ends its turn.
    pub fn turn(&self, turn: Turn<'_>) -> crate::Result<()> {
        let mut tools = self.builtin_tools(turn.interrupted);
        self.turn_with(&mut tools, turn)
    }

    /// Runs the loop with `tools` (the face's own, or the built-in ones wrapped) until the
    /// model ends its turn; traced when the session has a tracer.
    pub fn turn_with(&self, tools: &mut dyn ToolRunner, turn: Turn<'_>) -> crate::Result<()> {
        let Turn { messages, user, events, interrupted, drain } = turn;
        trace::turn(self.trace, user, events, |events| {
            Loop {
                config: &self.config,
                model: self.model,
                manager: self.manager,
                tools,
                events,
                interrupted,
                drain,
            }
            .run(messages)
        })
    }
}
