//! The command line's session: the core's [`crate::session::Session`], with what a terminal
//! adds (colours, the turn's Ctrl-C and SIGTERM handling).

use super::console::{CliEvents, Sink, Style};
use super::ending;
use super::interrupt::{interrupted, INTERRUPTED};
use crate::background::BackgroundManager;
use crate::error::Error;
use crate::llm::Model;
use crate::session::{SessionConfig, Turn};
use crate::trace::Tracer;
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Everything one session uses.
pub(crate) struct Session {
    pub config: SessionConfig,
    pub model: Box<dyn Model>,
    pub manager: Arc<BackgroundManager>,
    pub style: Style,
    pub trace: Option<Arc<Tracer>>,
}

impl Session {
    /// Runs the loop on `messages` until the model ends its turn (or Ctrl-C).
    pub fn turn(&self, messages: &mut Vec<Value>, events: &mut CliEvents) -> Result<(), Error> {
        let _running = ending::TurnRunning::start();
        // A SIGTERM that came before the turn still ends it at once.
        INTERRUPTED.store(ending::requested(), Ordering::SeqCst);
        let user = messages.last().and_then(|m| m["content"].as_str()).map(str::to_string);
        let session =
            self.config.session(self.model.as_ref(), &self.manager, self.trace.as_deref());
        session.turn(Turn {
            messages,
            user: user.as_deref(),
            events,
            interrupted: &interrupted,
            drain: None,
        })
    }

    pub fn events(&self, stream_text: bool, sink: Sink) -> CliEvents {
        CliEvents::new(self.style, stream_text, sink)
    }

    pub fn workdir(&self) -> &Path {
        &self.config.workdir
    }
}
