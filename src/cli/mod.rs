//! The `bgagent` command: the lesson's REPL, one-shot mode (`-p`) and an offline demo.
//! `main` is also what the pip-installed `bgagent` script calls, through the extension.

mod console;
pub mod demo;
mod ending;
mod env_file;
mod failure;
mod interrupt;
mod repl;
mod session;
mod tail;

use crate::background::{BackgroundManager, Records, Until};
use crate::defaults;
use crate::llm::{HttpClient, HttpConfig, Model, ScriptedModel};
use crate::runtime::Seconds;
use crate::session::SessionConfig;
use crate::trace::Tracer;
use clap::Parser;
use console::{say, Sink, Style};
use failure::Failure;
use interrupt::{install_signal_handlers, interrupted};
use serde_json::{json, Value};
use session::Session;
use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "bgagent",
    version,
    about = "A coding agent whose long commands run in the background (the s08 lesson, for real)",
    after_help = "Without -p it starts the REPL: type a request, `q` to quit, /help for commands.\n\
                  Try it offline with: bgagent --demo"
)]
struct Args {
    /// Model name [default: $MODEL_ID]
    #[arg(long)]
    model: Option<String>,
    /// Messages API base URL [default: $ANTHROPIC_BASE_URL]
    #[arg(long)]
    base_url: Option<String>,
    /// Take ANTHROPIC_BASE_URL from ./.env too (without it, production takes only MODEL_ID
    /// and the credentials from .env: a repository's .env must not choose where the key goes)
    #[arg(long)]
    trust_dotenv_base_url: bool,
    /// Where commands run and files are read and written (default: the current directory)
    #[arg(long)]
    workdir: Option<PathBuf>,
    #[arg(long, default_value_t = defaults::MAX_TOKENS)]
    max_tokens: u32,
    /// Seconds before a background task is stopped
    #[arg(long, default_value_t = defaults::TASK_TIMEOUT.as_secs_f64())]
    bg_timeout: f64,
    /// Seconds to wait at the end of a turn for tasks still running (not with --mirror)
    #[arg(long, default_value_t = defaults::MAX_WAIT.as_secs_f64())]
    max_wait: f64,
    /// Background tasks running at once; the others wait in line (default: twice the CPUs
    /// this process may use, at least 4; no limit with --mirror)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_running: Option<u64>,
    /// Exactly the lesson's loop and six tools
    #[arg(long)]
    mirror: bool,
    /// Let commands see ANTHROPIC_API_KEY / ANTHROPIC_AUTH_TOKEN (hidden in production, and
    /// their values redacted from outputs and the trace)
    #[arg(long)]
    pass_api_key: bool,
    /// One turn: send TEXT (`-` reads it from stdin), print the final answer, exit
    #[arg(short = 'p', long, value_name = "TEXT")]
    prompt: Option<String>,
    /// Replay model responses from a JSON file instead of calling a server
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,
    /// Write every model call, tool call, task start and end, drain and injection as JSON lines
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// No colours (NO_COLOR is respected too)
    #[arg(long)]
    no_color: bool,
    /// Play the lesson's three prompts offline with a built-in model
    #[arg(long)]
    demo: bool,
    /// In the REPL, start a turn by itself when a background task finishes
    #[arg(long)]
    auto_resume: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Draw a trace (from --trace): one self-contained HTML page, and/or an SVG picture
    View {
        /// The trace file (JSON lines)
        trace: PathBuf,
        /// The HTML page to write (default: the trace's name with .html)
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Also (or only, without -o) write the static picture as SVG
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Serve the background tools to an MCP host (Claude Code, Codex, Cursor...) over stdio
    Mcp {
        /// The workspace: tasks run in it or beneath it (default: the current directory)
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// Background tasks running at once; the others wait in line (default: twice the
        /// CPUs this process may use, at least 4)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        max_running: Option<u64>,
    },
}

/// Exit codes: 0 done, 1 the model call failed, 2 bad usage or configuration, 130 Ctrl-C,
/// 143 SIGTERM, 129 SIGHUP (a closed terminal).
pub fn main(args: Vec<OsString>) -> i32 {
    // Parsed before `.env` is read: `--help` and `--version` need nothing from it.
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    install_signal_handlers();
    let result = match args.command {
        // A picture of a trace needs no model, no key and nothing from `.env`.
        Some(Command::View { trace, output, svg }) => view(&trace, output, svg),
        // The server needs no model and nothing from `.env`.
        Some(Command::Mcp { workdir, max_running }) => {
            guard_the_key();
            mcp(workdir.or(args.workdir), max_running.or(args.max_running))
        }
        None => {
            load_env_file(args.mirror, args.trust_dotenv_base_url);
            guard_the_key();
            run(args)
        }
    };
    match result {
        Ok(()) => 0,
        Err(Failure(code, message)) => {
            if !message.is_empty() {
                eprintln!("bgagent: {message}");
            }
            code
        }
    }
}

/// `./.env` into the environment: with `--mirror` every binding over the environment, as the
/// lesson's `load_dotenv(override=True)` does; in production what [`env_file::decide`] allows,
/// with one line naming what it left out. A file that is not a regular file of at most 1 MiB
/// is not read (one line says why).
fn load_env_file(mirror: bool, trust_base_url: bool) {
    let path = std::path::Path::new(".env");
    let text = match env_file::read(path) {
        Ok(Some(text)) => text,
        Ok(None) => return,
        Err(why) => return eprintln!("bgagent: {why}"),
    };
    // Set before the CLI starts a thread of its own, so no getenv of ours runs beside them.
    if mirror {
        // dotenvy reads as the lesson's python-dotenv does (`${VAR}` expanded) and, like its
        // own loader, stops at the first line it cannot parse. A value with a NUL byte cannot
        // go into the environment (set_var would panic).
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        for (name, value) in dotenvy::from_read_iter(text.as_bytes()).map_while(Result::ok) {
            if !name.is_empty() && !value.contains('\0') {
                std::env::set_var(name, value);
            }
        }
        return;
    }
    let is_set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let decision = env_file::decide(&env_file::parse(&text), is_set, trust_base_url);
    for (name, value) in decision.apply {
        std::env::set_var(name, value);
    }
    if let Some(line) = env_file::warning(&decision.ignored) {
        eprintln!("{line}");
    }
}

/// While the process holds a key (exported, or from `.env`), it is not dumpable: a task (or any
/// other process of the same user) can no longer read its `/proc/PID/environ` or
/// `/proc/PID/mem`, nor ptrace it. A core dump, which would hold the key too, is not written.
fn guard_the_key() {
    let holds_key = crate::secrets::SECRET_VARS
        .iter()
        .any(|n| std::env::var_os(n).is_some_and(|v| !v.is_empty()));
    if holds_key {
        // SAFETY: PR_SET_DUMPABLE takes one integer argument and changes only this process.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            let e = std::io::Error::last_os_error();
            eprintln!("bgagent: cannot keep other processes from reading the key: {e}");
        }
    }
}

fn run(args: Args) -> Result<(), Failure> {
    let style = Style::new(args.no_color);
    let bg_timeout = Seconds::positive("bg-timeout", args.bg_timeout)?.duration();
    let max_wait = Seconds::non_negative("max-wait", args.max_wait)?.duration();
    // The demo works in a fresh directory, removed when it ends.
    let demo_dir = match args.demo {
        true => Some(
            tempfile::Builder::new()
                .prefix("bgagent-demo-")
                .tempdir()
                .map_err(|e| Failure(2, format!("cannot create the demo's directory: {e}")))?,
        ),
        false => None,
    };
    let workdir = match demo_dir.as_ref().map(|d| d.path().to_path_buf()).or(args.workdir.clone()) {
        Some(dir) => dir,
        None => {
            std::env::current_dir().map_err(|e| Failure(2, format!("no working directory: {e}")))?
        }
    };
    let workdir = std::fs::canonicalize(&workdir)
        .map_err(|e| Failure(2, format!("--workdir {}: {e}", workdir.display())))?;

    // `.env` has been applied by now, so the environment is the last word.
    let from_env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let model_name = args.model.clone().or_else(|| from_env("MODEL_ID"));
    let model: Box<dyn Model> = if args.demo {
        Box::new(demo::DemoModel)
    } else if let Some(path) = &args.script {
        Box::new(ScriptedModel::from_file(path).map_err(|e| Failure(2, e.to_string()))?)
    } else {
        let mut http = HttpConfig::from_env();
        if let Some(url) = &args.base_url {
            http.base_url = url.clone();
        }
        http.stream = true;
        if model_name.as_deref().unwrap_or_default().is_empty() {
            return Err(Failure(2, "no model name: set MODEL_ID or pass --model NAME".into()));
        }
        if http.api_key.is_none() && http.auth_token.is_none() {
            return Err(Failure(
                2,
                "no API key: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN)".into(),
            ));
        }
        Box::new(HttpClient::new(http).map_err(|e| Failure(2, e.to_string()))?)
    };
    let config = SessionConfig::new(workdir)
        .model(model_name.unwrap_or_else(|| "demo".into()))
        .mirror(args.mirror)
        .pass_api_key(args.pass_api_key)
        .max_wait(max_wait)
        .max_tokens(args.max_tokens)
        .task_timeout(bg_timeout)
        .max_running(Some(args.max_running.map_or_else(defaults::max_running, |n| n as usize)));
    let manager =
        BackgroundManager::new(config.manager_options()).map_err(|e| Failure(2, e.to_string()))?;
    let manager = Arc::new(manager);
    let trace = match &args.trace {
        Some(path) => Some(
            Tracer::to_file(path, &config.run_info())
                .map_err(|e| Failure(2, format!("--trace {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let watcher = trace.as_ref().map(|t| t.follow(&manager));
    let session = Session { config, model, manager, style, trace };

    let end_watch = ending::EndWatch::start(session.manager.clone())
        .map_err(|e| Failure(2, format!("cannot watch for SIGTERM: {e}")))?;
    let result = if args.demo {
        run_demo(&session)
    } else if let Some(prompt) = &args.prompt {
        one_shot(&session, prompt)
    } else {
        repl::run(&session, args.auto_resume)
    };
    drop(end_watch);
    session.manager.shutdown();
    drop(watcher); // records the last task ends
    drop(demo_dir);
    result
}

/// `bgagent mcp`: the background tools over stdio until the client leaves.
#[cfg(feature = "mcp")]
fn mcp(workdir: Option<PathBuf>, max_running: Option<u64>) -> Result<(), Failure> {
    let workdir = match workdir {
        Some(dir) => dir,
        None => {
            std::env::current_dir().map_err(|e| Failure(2, format!("no working directory: {e}")))?
        }
    };
    let workdir = std::fs::canonicalize(&workdir)
        .map_err(|e| Failure(2, format!("--workdir {}: {e}", workdir.display())))?;
    let max_running = max_running.map_or_else(defaults::max_running, |n| n as usize);
    match crate::mcp::serve(workdir, max_running) {
        Ok(0) => Ok(()),
        Ok(code) => Err(Failure(code, String::new())),
        Err(message) => Err(Failure(2, message)),
    }
}

#[cfg(not(feature = "mcp"))]
fn mcp(_workdir: Option<PathBuf>, _max_running: Option<u64>) -> Result<(), Failure> {
    Err(Failure(2, NO_MCP.into()))
}

#[cfg(not(feature = "mcp"))]
const NO_MCP: &str = "this build has no MCP server: build it with `cargo build --features mcp`, \
                      or install the Python package (pip), whose `bgagent` has it";

/// `bgagent view TRACE`: the picture of a run.
fn view(
    trace: &std::path::Path,
    output: Option<PathBuf>,
    svg: Option<PathBuf>,
) -> Result<(), Failure> {
    let bytes = std::fs::read(trace)
        .map_err(|e| Failure(2, format!("cannot read the trace {}: {e}", trace.display())))?;
    let run = crate::trace::view::Run::from_bytes(&bytes);
    if run.header.is_none() {
        return Err(Failure(
            2,
            format!("{} is not a bgagent trace (no header line)", trace.display()),
        ));
    }
    if run.cut_last_line {
        eprintln!(
            "bgagent: warning: the last line of {} is cut (was the trace still being written?); \
             it is left out",
            trace.display()
        );
    }
    let output = match (&output, &svg) {
        (None, Some(_)) => None,
        (Some(o), _) => Some(o.clone()),
        (None, None) => Some(trace.with_extension("html")),
    };
    let write = |path: &std::path::Path, content: String| {
        std::fs::write(path, &content)
            .map_err(|e| Failure(2, format!("cannot write {}: {e}", path.display())))?;
        say(&format!("wrote {} ({} KB)\n", path.display(), content.len().div_ceil(1024)));
        Ok::<(), Failure>(())
    };
    if let Some(path) = output {
        write(&path, crate::trace::view::html(&run))?;
    }
    if let Some(path) = svg {
        write(&path, crate::trace::view::svg(&run))?;
    }
    Ok(())
}

fn one_shot(session: &Session, prompt: &str) -> Result<(), Failure> {
    let prompt = if prompt == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure(2, format!("cannot read stdin: {e}")))?;
        text
    } else {
        prompt.to_string()
    };
    let mut messages = vec![json!({"role": "user", "content": prompt})];
    let mut events = session.events(false, Sink::Stderr);
    session.turn(&mut messages, &mut events)?;
    say(&format!("{}\n", last_text(&messages)));
    Ok(())
}

/// The text of the last assistant message.
fn last_text(messages: &[Value]) -> String {
    let last = messages.iter().rev().find(|m| m["role"] == "assistant");
    let blocks = last.and_then(|m| m["content"].as_array()).map(Vec::as_slice).unwrap_or_default();
    crate::llm::block::joined_text(blocks)
}

fn run_demo(session: &Session) -> Result<(), Failure> {
    let style = session.style;
    say(&format!(
        "{}\n",
        style.paint(
            "1",
            &format!(
                "bgagent demo: a built-in model, real background tasks in {}",
                session.workdir().display()
            )
        )
    ));
    say(&format!(
        "{}\n",
        style.paint(
            "2",
            "each line: time since the start, then who: you, the model, a tool, or the loop"
        )
    ));
    let start = std::time::Instant::now();
    let mut messages = Vec::new();
    for prompt in demo::PROMPTS {
        say("\n");
        let mut events = session.events(true, Sink::Stdout);
        events.labelled = Some(start);
        events.labelled_line("you", "36", prompt);
        messages.push(json!({"role": "user", "content": prompt}));
        session.turn(&mut messages, &mut events)?;
    }
    if session.config.policy().wait_at_end_turn.is_none() {
        explain_the_gap(session);
    }
    say(&format!(
        "\n{}\n{}\n",
        style.paint("1", "Background tasks at the end:"),
        session.manager.check(None)
    ));
    Ok(())
}

/// `--demo --mirror`: the lesson's loop returned at end_turn with tasks running; let them end,
/// then say where their results are (the lesson's known gap) and what production does.
fn explain_the_gap(session: &Session) {
    let manager = &session.manager;
    let running = manager.snapshot(Records::None).running;
    if running > 0 {
        say(&format!(
            "\nThe lesson's loop returned at end_turn while {running} background tasks still ran. \
             Letting them finish...\n"
        ));
        let limit = Some(std::time::Duration::from_secs(15));
        let _ = crate::runtime::poll_until(&interrupted, limit, |slice| {
            manager.wait(Until::Idle, Some(slice)).ok().map(drop)
        });
    }
    let queued = manager.snapshot(Records::None).queued;
    let results = if queued == 1 { "result is" } else { "results are" };
    say(&format!(
        "\n{}\n",
        session.style.paint(
            "33",
            &format!(
                "{queued} {results} still in the queue. The loop returned at end_turn, so \
                 they would reach\nthe model only with your next message: nothing drains the \
                 queue until the loop runs again.\nProduction mode (bgagent --demo, without \
                 --mirror) waits at the end of a turn for running tasks\nand injects their \
                 results before the turn ends, so none is left behind."
            )
        )
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_parse() {
        let a = Args::try_parse_from(["bgagent", "-p", "hi", "--mirror", "--max-tokens", "10"])
            .unwrap();
        assert_eq!(a.prompt.as_deref(), Some("hi"));
        assert!(a.mirror);
        assert_eq!(a.max_tokens, 10);
    }

    #[test]
    fn mcp_takes_its_workspace_and_cap() {
        let a = Args::try_parse_from(["bgagent", "mcp", "--workdir", "/w", "--max-running", "1"])
            .unwrap();
        let Some(Command::Mcp { workdir, max_running }) = a.command else { panic!("{a:?}") };
        assert_eq!((workdir, max_running), (Some(PathBuf::from("/w")), Some(1)));
        assert!(Args::try_parse_from(["bgagent", "mcp", "--max-running", "0"]).is_err());
    }

    #[cfg(not(feature = "mcp"))]
    #[test]
    fn without_the_feature_mcp_says_how_to_get_it() {
        assert_eq!(main(vec!["bgagent".into(), "mcp".into()]), 2);
        assert!(!NO_MCP.contains('\n'));
        assert!(NO_MCP.contains("--features mcp") && NO_MCP.contains("pip"));
    }
}
