//! `bgagent._core.DEFAULTS`: the core's defaults (`bgagent::defaults`) by the name of the
//! parameter that takes them, so Python's signatures can be checked against them.

use bgagent::defaults;
use bgagent::llm::ScriptedModel;
use bgagent::tools::BASH_TIMEOUT;
use pyo3::prelude::*;
use pyo3::types::PyDict;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let d = PyDict::new(m.py());
    // BackgroundManager's
    d.set_item("timeout", defaults::TASK_TIMEOUT.as_secs_f64())?;
    d.set_item("output_limit", defaults::OUTPUT_LIMIT)?;
    d.set_item("preview_limit", defaults::PREVIEW_LIMIT)?;
    d.set_item("grace", defaults::GRACE.as_secs_f64())?;
    d.set_item("log_limit", defaults::LOG_LIMIT)?;
    // Production's cap on running tasks: twice the CPUs this process may use, at least 4.
    d.set_item("max_running", defaults::max_running())?;
    // What production keeps of finished tasks: their number, and their logs' bytes.
    d.set_item("keep_finished", defaults::KEEP_FINISHED)?;
    d.set_item("log_budget", defaults::LOG_BUDGET)?;
    // The loop's (Agent, run_loop)
    d.set_item("max_wait", defaults::MAX_WAIT.as_secs_f64())?;
    d.set_item("max_tokens", defaults::MAX_TOKENS)?;
    // The tools' and the clients'
    d.set_item("bash_timeout", BASH_TIMEOUT.as_secs_f64())?;
    d.set_item("client_timeout", defaults::CLIENT_TIMEOUT.as_secs_f64())?;
    d.set_item("max_retries", defaults::CLIENT_MAX_RETRIES)?;
    d.set_item("keep_requests", ScriptedModel::KEEP_REQUESTS)?;
    m.add("DEFAULTS", d)
}
