//! The picture of a trace: a time axis in real seconds, a lane for the main loop (model calls,
//! tools, the wait for stragglers, idle time waiting for the user) and one lane per background
//! task, with a link from each task's end to the drain and the model call that first saw its
//! result. [`html`] adds a step-through of the model calls (left/right keys); [`svg`] is the
//! static picture alone.

use super::event::{Event, Header, Line, TasksInAnswer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Characters of a text shown in the step-through (the trace keeps more).
const SHOWN: usize = 1000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Activity {
    Call,
    Tool,
    Wait,
    Idle,
}

/// A stretch of the main loop's time.
#[derive(Clone, Debug)]
pub struct Segment {
    pub activity: Activity,
    pub start: f64,
    pub end: f64,
    pub label: String,
    /// The step (model call) this stretch belongs to.
    pub step: Option<usize>,
}

/// One background task's life, and where its result went.
#[derive(Clone, Debug, Default)]
pub struct TaskLane {
    pub id: String,
    pub command: String,
    pub queued: f64,
    pub started: Option<f64>,
    pub finished: Option<f64>,
    pub status: String,
    pub exit_code: Option<i64>,
    pub bytes: u64,
    pub drained: Option<f64>,
    /// The model call whose request first carried the injected result.
    pub injected_into: Option<u64>,
    /// Seconds the result waited in the queue while the loop was idle (the lesson's gap).
    pub waited_idle: f64,
    /// A check_background answer showed its result to the model before the injection did.
    pub polled: bool,
    /// It waited for a slot under the manager's cap: its place in line when submitted.
    pub place: Option<u64>,
}

/// One model call, with what was new in the conversation it was sent.
#[derive(Clone, Debug, Default)]
pub struct Step {
    pub call: u64,
    pub turn: u64,
    pub start: f64,
    pub end: f64,
    pub stop_reason: String,
    /// (kind, text): "user", "tool_result", "injected".
    pub sent: Vec<(String, String)>,
    pub reply: String,
    /// (name, input, output) of the tools the reply asked for.
    pub tools: Vec<(String, String, String)>,
}

/// A trace read back and joined.
#[derive(Clone, Debug, Default)]
pub struct Run {
    pub header: Option<Header>,
    /// Where the picture starts: 0, or where a trace kept in memory let its oldest lines go
    /// (the loop's lines before that time are missing).
    pub start: f64,
    pub end: f64,
    pub segments: Vec<Segment>,
    pub tasks: Vec<TaskLane>,
    pub steps: Vec<Step>,
    /// (turn number, when its user message came).
    pub turns: Vec<(u64, f64)>,
    /// The last line was not a JSON object (a trace cut while it was being written): it was
    /// skipped.
    pub cut_last_line: bool,
    /// Lines a trace kept in memory let go (its `lines_dropped` line), and how many it keeps.
    pub dropped: Option<(u64, u64)>,
}

/// The latest time drawn (about 31 years): a corrupt or hostile `t` (1e308) is held to it so
/// that every position and duration stays finite.
const LATEST: f64 = 1e9;

/// A line's time: held to [0, LATEST], and never before the line before it (the writer's
/// promise, kept for a trace edited by hand), so no duration is infinite or negative. A line
/// without one reads as 0, and so takes the time before it.
fn time(t: f64, before: f64) -> f64 {
    // `max` also turns a NaN into `before`.
    t.clamp(0.0, LATEST).max(before)
}

impl Run {
    /// Reads the trace's lines (lines that are not JSON objects are skipped).
    pub fn from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Run {
        let mut reader = Reader::new();
        let mut last_is_object = true;
        for line in lines {
            let event = serde_json::from_str::<Value>(line).ok().filter(Value::is_object);
            last_is_object = event.is_some() || line.trim().is_empty();
            if let Some(e) = event {
                reader.line(Line::read(&e));
            }
        }
        let mut run = reader.finish();
        run.cut_last_line = !last_is_object;
        run
    }

    /// Reads a trace file's bytes. Bytes that are not UTF-8 (a last line cut inside a
    /// character) are replaced, so the rest of the trace still shows.
    pub fn from_bytes(bytes: &[u8]) -> Run {
        Run::from_lines(String::from_utf8_lossy(bytes).lines())
    }

    fn segment(
        &mut self,
        activity: Activity,
        start: f64,
        end: f64,
        label: String,
        step: Option<usize>,
    ) {
        self.segments.push(Segment { activity, start, end, label, step });
    }

    fn close(&mut self, open: &mut Option<(Activity, f64, String)>, t: f64, step: Option<usize>) {
        if let Some((activity, start, label)) = open.take() {
            let step = match activity {
                Activity::Call => self.steps.len().checked_sub(1),
                _ => step,
            };
            self.segment(activity, start, t, label, step);
        }
    }
}

/// A trace being read: the run so far, and what the next lines join to.
struct Reader {
    run: Run,
    /// Each task id's lane (its first, should an id be queued twice), so that joining an event
    /// to its task does not scan every lane.
    lanes: HashMap<String, usize>,
    /// The main loop's stretch under way: a model call, a tool or a wait.
    open: Option<(Activity, f64, String)>,
    idle_since: Option<f64>,
    /// The loop's idle stretches so far, in time order.
    idle: Vec<(f64, f64)>,
    /// What is new in the conversation for the next model call.
    pending: Vec<(String, String)>,
    /// The header's schema version (1 without a header).
    version: u64,
}

impl Reader {
    fn new() -> Reader {
        Reader {
            run: Run::default(),
            lanes: HashMap::new(),
            open: None,
            idle_since: Some(0.0),
            idle: Vec::new(),
            pending: Vec::new(),
            version: 1,
        }
    }

    fn line(&mut self, line: Line) {
        let t = time(line.t, self.run.end);
        self.run.end = t;
        let step = self.run.steps.len().checked_sub(1);
        let run = &mut self.run;
        match line.event {
            Event::Header(header) => {
                self.version = header.version;
                run.header = Some(header);
            }
            Event::LinesDropped { lines, task_progress, limit } => {
                run.dropped = Some((lines, limit));
                // Lines of the loop went: what it was doing until then is unknown, so the
                // picture starts here rather than with an idle stretch from 0.
                if lines > task_progress {
                    run.start = t;
                    self.idle_since = None;
                }
            }
            Event::UserInput { turn, text, .. } => {
                if let Some(since) = self.idle_since.take() {
                    run.segment(Activity::Idle, since, t, "waiting for the user".into(), None);
                    self.idle.push((since, t));
                }
                self.pending.push(("user".into(), text));
                run.turns.push((turn, t));
            }
            Event::ModelCall { turn, call } => {
                let label = call.map_or_else(|| "call ?".into(), |c| format!("call {c}"));
                self.open = Some((Activity::Call, t, label));
                run.steps.push(Step {
                    call: call.unwrap_or_default(),
                    turn,
                    start: t,
                    end: t,
                    sent: std::mem::take(&mut self.pending),
                    ..Step::default()
                });
            }
            Event::ModelReply { stop_reason, text, .. } => {
                run.close(&mut self.open, t, step);
                if let Some(s) = run.steps.last_mut() {
                    s.end = t;
                    s.stop_reason = stop_reason.unwrap_or_default();
                    s.reply = text;
                }
            }
            Event::ToolCall { name, input, .. } => {
                self.open = Some((Activity::Tool, t, name.clone()));
                if let Some(s) = run.steps.last_mut() {
                    s.tools.push((name, input, String::new()));
                }
            }
            Event::ToolResult { name, output, ended_tasks, .. } => {
                run.close(&mut self.open, t, step);
                if let Some(tool) = run.steps.last_mut().and_then(|s| s.tools.last_mut()) {
                    tool.2 = output.clone();
                }
                // Version 1 lines do not name the tasks: their answer's text does.
                let ended = if self.version < 2 {
                    TasksInAnswer::read(&name, &output, |id| self.lanes.contains_key(id)).ended
                } else {
                    ended_tasks
                };
                self.seen_ended(&ended);
                self.pending.push(("tool_result".into(), format!("{name}: {output}")));
            }
            Event::WaitStart { .. } => {
                self.open = Some((Activity::Wait, t, "waiting for running tasks".into()))
            }
            Event::WaitEnd { why, .. } => {
                if let Some(o) = self.open.as_mut() {
                    o.2 = format!("waited for tasks: {}", why.map_or("", |w| w.as_str()));
                }
                run.close(&mut self.open, t, step);
            }
            Event::Drain { call, task_ids, .. } => self.drained(t, call, &task_ids),
            Event::Inject { call, task_ids, text, .. } => {
                self.drained(t, call, &task_ids);
                self.pending.push(("injected".into(), text));
            }
            Event::TurnEnd { .. } => {
                run.close(&mut self.open, t, step);
                self.idle_since = Some(t);
            }
            Event::TaskQueued { task_id, command, place, .. } => {
                self.lanes.entry(task_id.clone()).or_insert(run.tasks.len());
                run.tasks.push(TaskLane {
                    id: task_id,
                    command,
                    queued: t,
                    status: if place.is_some() { "queued" } else { "running" }.into(),
                    place,
                    ..TaskLane::default()
                });
            }
            Event::TaskStarted { task_id, .. } => {
                if let Some(task) = self.task(&task_id) {
                    task.started = Some(t);
                    if task.status == "queued" {
                        task.status = "running".into();
                    }
                }
            }
            Event::TaskFinished { task_id, status, exit_code, record } => {
                if let Some(task) = self.task(&task_id) {
                    task.finished = Some(t);
                    task.status = status;
                    task.exit_code = exit_code;
                    // Saturating: two hostile counts near u64::MAX must not overflow.
                    task.bytes =
                        record.map_or(0, |r| r.stdout_bytes.saturating_add(r.stderr_bytes));
                }
            }
            Event::TaskProgress { .. } | Event::TaskDrained { .. } | Event::Unknown => {}
        }
    }

    /// The tasks whose results a drain took (before model call `call`).
    fn drained(&mut self, t: f64, call: Option<u64>, task_ids: &[String]) {
        for id in task_ids {
            if let Some(task) = self.task(id) {
                task.drained.get_or_insert(t);
                task.injected_into = task.injected_into.or(call);
            }
        }
    }

    fn task(&mut self, id: &str) -> Option<&mut TaskLane> {
        self.lanes.get(id).map(|&i| &mut self.run.tasks[i])
    }

    /// A check_background answer showed these tasks as ended: the model saw the results of
    /// those that had finished and were not drained yet.
    fn seen_ended(&mut self, ended: &[String]) {
        for id in ended {
            if let Some(task) = self.task(id) {
                if task.finished.is_some() && task.drained.is_none() {
                    task.polled = true;
                }
            }
        }
    }

    fn finish(mut self) -> Run {
        let mut run = self.run;
        if let Some(since) = self.idle_since {
            if run.end > since {
                run.segment(Activity::Idle, since, run.end, "waiting for the user".into(), None);
                self.idle.push((since, run.end));
            }
        }
        let idle = Idle::new(self.idle);
        for task in &mut run.tasks {
            let Some(done) = task.finished else { continue };
            task.waited_idle = idle.between(done, task.drained.unwrap_or(run.end));
        }
        run
    }
}

/// The loop's idle stretches, in time order and apart (times never go backwards), with the
/// idle seconds before each: the idle time within any span takes two binary searches.
struct Idle {
    stretches: Vec<(f64, f64)>,
    /// `before[k]`: idle seconds in the first `k` stretches.
    before: Vec<f64>,
}

impl Idle {
    fn new(stretches: Vec<(f64, f64)>) -> Idle {
        let mut before = vec![0.0];
        for &(start, end) in &stretches {
            before.push(before[before.len() - 1] + (end - start));
        }
        Idle { stretches, before }
    }

    /// Idle seconds before `t`.
    fn until(&self, t: f64) -> f64 {
        let k = self.stretches.partition_point(|&(_, end)| end <= t);
        let within = self.stretches.get(k).map_or(0.0, |&(start, _)| (t - start).max(0.0));
        self.before[k] + within
    }

    /// Idle seconds between `from` and `to` (none if `to` comes first).
    fn between(&self, from: f64, to: f64) -> f64 {
        (self.until(to) - self.until(from)).max(0.0)
    }
}

/// Text for HTML and SVG: markup characters as entities, and the characters XML 1.0 does not
/// allow (control characters such as an ANSI colour's ESC, U+FFFE, U+FFFF) left out, so that
/// the picture stays well-formed XML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&quot;"),
            c if xml_char(c) => out.push(c),
            _ => {}
        }
    }
    out
}

/// XML 1.0's `Char` production (a Rust char is never a surrogate).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// JSON to put inside a `<script>` element. `<`, `>` and `&` become `\u` escapes (they can
/// only occur inside strings), so no text (`</script>`, `<!--`, `<script`) can change how the
/// HTML parser reads the element; U+2028 and U+2029 too, which older JavaScript reads as line
/// ends.
fn script_json(value: &Value) -> String {
    let json = value.to_string();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn short(s: &str, n: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        one_line.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
    }
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

const LEFT: f64 = 300.0;
const WIDTH: f64 = 900.0;
const TOP: f64 = 40.0;
const LANE: f64 = 26.0;

fn colour(status: &str) -> &'static str {
    match status {
        "completed" => "#2da44e",
        "timeout" => "#bf8700",
        "error" => "#cf222e",
        "killed" => "#8250df",
        _ => "#1f6feb",
    }
}

/// A round step for axis ticks: about ten over `span` seconds.
fn tick(span: f64) -> f64 {
    let rough = (span / 10.0).max(0.001);
    let power = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|s| *s >= rough).unwrap_or(power * 10.0)
}

/// The static picture.
pub fn svg(run: &Run) -> String {
    let span = (run.end - run.start).max(0.001);
    let x = |t: f64| LEFT + (t - run.start) / span * WIDTH;
    let loop_y = TOP + 20.0;
    let height = loop_y + 60.0 + run.tasks.len() as f64 * LANE + 30.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns='http://www.w3.org/2000/svg' class='timeline' width='{w}' height='{height}' \
         viewBox='0 0 {w} {height}' font-family='sans-serif' font-size='12'>\
         <defs><pattern id='stripes' width='6' height='6' patternUnits='userSpaceOnUse' \
         patternTransform='rotate(45)'><rect width='6' height='6' fill='#d0d7de'/>\
         <rect width='3' height='6' fill='#afb8c1'/></pattern>\
         <marker id='arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='6' \
         markerHeight='6' orient='auto'><path d='M0,0 L10,5 L0,10 z' fill='#57606a'/></marker></defs>",
        w = LEFT + WIDTH + 560.0
    );
    // The time axis.
    let step = tick(span);
    // Ticks at round times: the first at or after the start.
    let mut t = (run.start / step).ceil() * step;
    while t <= run.end.max(run.start + 0.001) + 1e-9 {
        let _ = write!(
            s,
            "<line x1='{x0}' y1='{TOP}' x2='{x0}' y2='{bottom}' stroke='#eaeef2'/>\
             <text x='{x0}' y='{ty}' text-anchor='middle' fill='#57606a'>{t:.label$}s</text>",
            x0 = x(t),
            bottom = height - 20.0,
            ty = TOP - 8.0,
            label = (-step.log10().floor()).max(0.0) as usize
        );
        t += step;
    }
    // The main loop.
    let _ = write!(
        s,
        "<g data-lane='loop'><text x='8' y='{ly}' font-weight='bold'>main loop</text>",
        ly = loop_y + 15.0
    );
    // Waits and idle time first, then tools and model calls on top, at least 3 px wide so
    // that quick ones still show.
    let mut order: Vec<&Segment> = run.segments.iter().collect();
    order.sort_by_key(|seg| matches!(seg.activity, Activity::Call | Activity::Tool));
    for seg in order {
        let min = if matches!(seg.activity, Activity::Call | Activity::Tool) { 3.0 } else { 1.0 };
        let fill = match seg.activity {
            Activity::Call => "#4c78a8",
            Activity::Tool => "#f58518",
            Activity::Wait => "url(#stripes)",
            Activity::Idle => "#f0f3f6",
        };
        let step =
            seg.step.map(|i| format!(" data-step='{i}' class='step-mark'")).unwrap_or_default();
        let _ = write!(
            s,
            "<rect x='{x0}' y='{loop_y}' width='{w:.2}' height='22' fill='{fill}'{step}>\
             <title>{label} ({d:.2}s)</title></rect>",
            x0 = x(seg.start),
            w = (x(seg.end) - x(seg.start)).max(min),
            label = esc(&seg.label),
            d = seg.end - seg.start
        );
    }
    for turn in &run.turns {
        let _ = write!(
            s,
            "<line x1='{tx}' y1='{y1}' x2='{tx}' y2='{y2}' stroke='#24292f'/>\
             <text x='{lx}' y='{ly}' font-size='11'>turn {n}</text>",
            tx = x(turn.1),
            y1 = loop_y - 12.0,
            y2 = loop_y + 22.0,
            lx = x(turn.1) + 3.0,
            ly = loop_y - 3.0,
            n = turn.0
        );
    }
    s.push_str("</g>");
    // One lane per task, and where its result went.
    for (i, task) in run.tasks.iter().enumerate() {
        let y = loop_y + 50.0 + i as f64 * LANE;
        let end = task.finished.unwrap_or(run.end);
        // A task that waited for a slot: the wait, from its submission to its start (or to
        // its end if it never started), drawn thin and hatched before its run.
        let waited = task.place.map(|place| (place, task.started.unwrap_or(end) - task.queued));
        let start = match waited {
            Some(_) => task.started.unwrap_or(end),
            None => task.started.unwrap_or(task.queued),
        };
        let fill = colour(&task.status);
        let mut facts = vec![task.status.clone()];
        if let Some(code) = task.exit_code {
            facts.push(format!("exit {code}"));
        }
        if let Some((_, wait)) = waited {
            facts.push(format!("waited {wait:.1}s"));
        }
        facts.push(format!("{:.1}s", end - start));
        facts.push(bytes(task.bytes));
        let _ = write!(
            s,
            "<g data-task-id='{id}' class='task'><text x='8' y='{ty}'>{idshort} \
             <tspan fill='#57606a'>{cmd}</tspan></text>\
             <rect x='{x0}' y='{y}' width='{w:.2}' height='16' rx='3' fill='{fill}'{dash}>\
             <title>{full}</title></rect><text x='{tx}' y='{ty}' fill='#24292f'>{facts}</text>",
            id = esc(&task.id),
            idshort = esc(&task.id),
            cmd = esc(&short(&task.command, 34)),
            ty = y + 12.0,
            x0 = x(start),
            w = (x(end) - x(start)).max(2.0),
            dash = if task.finished.is_none() { " fill-opacity='0.45'" } else { "" },
            full = esc(&task.command),
            tx = LEFT + WIDTH + 8.0,
            facts = esc(&facts.join(" · "))
        );
        if let Some((place, wait)) = waited {
            let _ = write!(
                s,
                "<rect class='wait' x='{x0}' y='{wy}' width='{w:.2}' height='6' \
                 fill='#8c959f' fill-opacity='0.5' stroke='#57606a' stroke-dasharray='2 2'>\
                 <title>waited {wait:.1}s for a slot ({place} in line)</title></rect>",
                x0 = x(task.queued),
                wy = y + 5.0,
                w = (x(start) - x(task.queued)).max(1.0),
                place = crate::background::production::ordinal(place as usize),
            );
        }
        if let Some(done) = task.finished {
            let mut notes = Vec::new();
            match (task.drained, task.injected_into) {
                (Some(at), call) => {
                    let waited = task.waited_idle > 0.05;
                    let _ = write!(
                        s,
                        "<path d='M{x1},{y1} C{x1},{mid} {x2},{mid} {x2},{y2}' fill='none' \
                         stroke='{stroke}' stroke-width='1.5'{dash} marker-end='url(#arrow)'/>",
                        x1 = x(done),
                        y1 = y,
                        x2 = x(at),
                        y2 = loop_y + 24.0,
                        mid = (y + loop_y) / 2.0,
                        stroke = if waited { "#cf222e" } else { "#57606a" },
                        dash = if waited { " stroke-dasharray='4 3'" } else { "" }
                    );
                    if let Some(call) = call {
                        notes.push(format!("→ call {call}"));
                    }
                    if waited {
                        notes.push(format!(
                            "waited {:.1}s in the queue while the loop was idle",
                            task.waited_idle
                        ));
                    }
                }
                (None, _) => notes.push("still queued when the trace ends".into()),
            }
            if task.polled && task.drained.is_some() {
                notes.push("seen twice: by check_background, then injected".into());
            }
            let _ = write!(
                s,
                "<text x='{tx}' y='{ty}' fill='{fill}' class='note'>{notes}</text>",
                tx = LEFT + WIDTH + 200.0,
                ty = y + 12.0,
                fill = if task.drained.is_none() || task.waited_idle > 0.05 {
                    "#cf222e"
                } else {
                    "#57606a"
                },
                notes = esc(&notes.join(" · "))
            );
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>");
    s
}

fn steps_json(run: &Run) -> Value {
    let cut = |t: &str| crate::text::prefix(t, SHOWN).to_string();
    Value::Array(
        run.steps
            .iter()
            .map(|s| {
                json!({
                    "call": s.call,
                    "turn": s.turn,
                    "start": s.start,
                    "duration": s.end - s.start,
                    "stop_reason": s.stop_reason,
                    "sent": s.sent.iter().map(|(k, t)| json!([k, cut(t)])).collect::<Vec<_>>(),
                    "reply": cut(&s.reply),
                    "tools": s.tools.iter().map(|(n, i, o)| json!([n, cut(i), cut(o)])).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// One self-contained page: the picture, a step list, and the step-through (no network).
pub fn html(run: &Run) -> String {
    let h = run.header.as_ref();
    let title = format!(
        "bgagent run: {} mode, model {}, {:.1}s, {} model calls, {} background tasks",
        h.and_then(|h| h.mode.as_deref()).unwrap_or("?"),
        h.and_then(|h| h.model.as_deref()).unwrap_or("?"),
        run.end,
        run.steps.len(),
        run.tasks.len()
    );
    // A trace kept in memory that let lines go says so, and how to keep them all.
    let dropped = match run.dropped {
        Some((lines, limit)) => format!(
            "<p class='dropped'>{lines} lines of this trace were dropped (task progress first, \
             then the oldest): a trace kept in memory holds {limit} lines. Trace to a file to \
             keep them all.</p>"
        ),
        None => String::new(),
    };
    let mut list = String::new();
    for (i, s) in run.steps.iter().enumerate() {
        let _ = write!(
            list,
            "<li data-step='{i}'>call {} · turn {} · {} · {:.2}s</li>",
            s.call,
            s.turn,
            esc(&s.stop_reason),
            s.end - s.start
        );
    }
    let steps = script_json(&steps_json(run));
    format!(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>\
         <style>{STYLE}</style></head><body data-step='0'><h1>{title}</h1>\
         <p class='legend'><span class='k call'></span>model call <span class='k tool'></span>tool \
         <span class='k wait'></span>waiting for running tasks <span class='k idle'></span>waiting \
         for the user · task lanes coloured by status · arrows: result drained and injected into \
         the model call shown (red, dashed: it waited in the queue while the loop was idle)</p>\
         {dropped}<div class='picture'>{svg}</div><div class='steps'><ol id='steps'>{list}</ol>\
         <div id='detail'></div></div><p class='hint'>← → step through the model calls</p>\
         <script id='step-data' type='application/json'>{steps}</script><script>{SCRIPT}</script>\
         </body></html>",
        title = esc(&title),
        svg = svg(run),
    )
}

const STYLE: &str = "body{font-family:sans-serif;margin:16px;color:#24292f}h1{font-size:16px}\
.picture{overflow-x:auto;border:1px solid #d0d7de;padding:4px}.steps{display:flex;gap:16px;\
margin-top:12px}#steps{width:320px;max-height:480px;overflow-y:auto;font-size:13px}\
#steps li{cursor:pointer;padding:2px 4px}#steps li.current{background:#ddf4ff;font-weight:bold}\
#detail{flex:1;font-size:13px}#detail pre{white-space:pre-wrap;background:#f6f8fa;padding:6px;\
margin:4px 0}.k{display:inline-block;width:12px;height:12px;margin:0 4px 0 10px;\
vertical-align:middle}.k.call{background:#4c78a8}.k.tool{background:#f58518}.k.wait{background:\
#afb8c1}.k.idle{background:#f0f3f6;border:1px solid #d0d7de}.legend,.hint{font-size:12px;\
color:#57606a}rect.current{stroke:#cf222e;stroke-width:3}.dropped{font-size:13px;color:#cf222e}";

const SCRIPT: &str = "(function(){var steps=JSON.parse(document.getElementById('step-data')\
.textContent);var items=document.querySelectorAll('#steps li');var detail=\
document.getElementById('detail');var cur=0;function el(tag,text){var e=document.createElement\
(tag);e.textContent=text;return e}function show(i){if(!steps.length)return;cur=Math.max(0,\
Math.min(steps.length-1,i));document.body.dataset.step=cur;items.forEach(function(li){li\
.classList.toggle('current',+li.dataset.step===cur)});document.querySelectorAll('rect.step-mark')\
.forEach(function(r){r.classList.toggle('current',+r.dataset.step===cur)});var s=steps[cur];\
detail.innerHTML='';detail.appendChild(el('h2','Model call '+s.call+' (turn '+s.turn+', '+\
s.stop_reason+', '+s.duration.toFixed(2)+'s)'));detail.appendChild(el('h3',\
'New in the conversation sent'));if(!s.sent.length)detail.appendChild(el('p','(nothing new)'));\
s.sent.forEach(function(m){detail.appendChild(el('b',m[0]==='injected'?'injected by the loop':\
m[0]==='user'?'user':'tool result'));detail.appendChild(el('pre',m[1]))});detail.appendChild(\
el('h3','The model said'));detail.appendChild(el('pre',s.reply||'(no text)'));s.tools.forEach(\
function(t){detail.appendChild(el('b','tool '+t[0]));detail.appendChild(el('pre','input: '+t[1]\
+'\\noutput: '+t[2]))});var li=items[cur];if(li&&li.scrollIntoView)li.scrollIntoView({block:\
'nearest'})}document.addEventListener('keydown',function(e){if(e.key==='ArrowRight'){show(cur+1);\
e.preventDefault()}else if(e.key==='ArrowLeft'){show(cur-1);e.preventDefault()}});items\
.forEach(function(li){li.addEventListener('click',function(){show(+li.dataset.step)})});\
document.querySelectorAll('rect.step-mark').forEach(function(r){r.addEventListener('click',\
function(){show(+r.dataset.step)})});show(0)})();";

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[Value]) -> Run {
        let text: Vec<String> = lines.iter().map(Value::to_string).collect();
        Run::from_lines(text.iter().map(String::as_str))
    }

    /// The lesson's gap: the loop returns at end_turn with a task running; its result waits in
    /// the queue while the loop is idle and reaches the model only with the next message.
    #[test]
    fn a_result_that_waited_while_the_loop_was_idle_is_joined_to_the_call_that_saw_it() {
        let r = run(&[
            json!({"t": 0.0, "event": "header", "mode": "mirror"}),
            json!({"t": 0.1, "event": "user_input", "turn": 1, "text": "go"}),
            json!({"t": 0.2, "event": "model_call", "turn": 1, "call": 1}),
            json!({"t": 0.5, "event": "model_reply", "turn": 1, "call": 1, "stop_reason": "tool_use"}),
            json!({"t": 0.5, "event": "tool_call", "turn": 1, "call": 1, "name": "background_run"}),
            json!({"t": 0.6, "event": "task_queued", "task_id": "a", "command": "sleep 2"}),
            json!({"t": 0.6, "event": "task_started", "task_id": "a"}),
            json!({"t": 0.6, "event": "tool_result", "turn": 1, "call": 1, "name": "background_run", "output": "Background task a started: sleep 2"}),
            json!({"t": 0.7, "event": "model_call", "turn": 1, "call": 2}),
            json!({"t": 0.9, "event": "model_reply", "turn": 1, "call": 2, "stop_reason": "end_turn"}),
            json!({"t": 0.9, "event": "turn_end", "turn": 1}),
            json!({"t": 2.6, "event": "task_finished", "task_id": "a", "status": "completed", "exit_code": 0}),
            json!({"t": 5.0, "event": "user_input", "turn": 2, "text": "and?"}),
            json!({"t": 5.0, "event": "drain", "turn": 2, "call": 3, "task_ids": ["a"]}),
            json!({"t": 5.0, "event": "inject", "turn": 2, "call": 3, "task_ids": ["a"], "text": "<background-results>"}),
            json!({"t": 5.1, "event": "model_call", "turn": 2, "call": 3}),
            json!({"t": 5.3, "event": "model_reply", "turn": 2, "call": 3, "stop_reason": "end_turn"}),
            json!({"t": 5.3, "event": "turn_end", "turn": 2}),
        ]);
        let a = &r.tasks[0];
        assert_eq!((a.started, a.finished, a.drained), (Some(0.6), Some(2.6), Some(5.0)));
        assert_eq!(a.injected_into, Some(3));
        assert!((a.waited_idle - 2.4).abs() < 1e-9, "{}", a.waited_idle);
        assert_eq!(r.steps.len(), 3);
        let third = &r.steps[2];
        assert_eq!(
            third.sent,
            vec![
                ("user".into(), "and?".into()),
                ("injected".into(), "<background-results>".into())
            ]
        );
        let idle: Vec<(f64, f64)> = r
            .segments
            .iter()
            .filter(|s| s.activity == Activity::Idle)
            .map(|s| (s.start, s.end))
            .collect();
        assert_eq!(idle, vec![(0.0, 0.1), (0.9, 5.0)]);
        let page = html(&r);
        assert!(page.contains("data-task-id='a'") && page.contains("data-lane='loop'"));
        assert!(page.contains("waited 2.4s in the queue while the loop was idle"));
    }

    /// A trace kept in memory that let the loop's oldest lines go: the picture starts where
    /// they went (not with an idle stretch from 0), and the page says how many went.
    #[test]
    fn a_trace_that_let_lines_go_is_drawn_from_where_they_went() {
        let r = run(&[
            json!({"t": 0.0, "event": "header", "mode": "production"}),
            json!({"t": 50.0, "event": "lines_dropped", "lines": 7, "task_progress": 2, "limit": 9}),
            json!({"t": 50.5, "event": "model_reply", "turn": 3, "call": 4, "stop_reason": "end_turn"}),
            json!({"t": 50.5, "event": "turn_end", "turn": 3}),
            json!({"t": 60.0, "event": "user_input", "turn": 4, "text": "go"}),
            json!({"t": 60.1, "event": "model_call", "turn": 4, "call": 5}),
            json!({"t": 61.0, "event": "model_reply", "turn": 4, "call": 5, "stop_reason": "end_turn"}),
            json!({"t": 61.0, "event": "turn_end", "turn": 4}),
        ]);
        assert_eq!((r.start, r.dropped), (50.0, Some((7, 9))));
        let spans: Vec<(Activity, f64, f64)> =
            r.segments.iter().map(|s| (s.activity, s.start, s.end)).collect();
        assert_eq!(
            spans,
            vec![(Activity::Idle, 50.5, 60.0), (Activity::Call, 60.1, 61.0)],
            "nothing before the cut"
        );
        let picture = svg(&r);
        assert!(picture.contains(&format!("<line x1='{LEFT}'")), "the axis starts at the cut");
        assert!(!picture.contains(">0s<") && picture.contains(">50s<"));
        assert!(html(&r).contains("7 lines of this trace were dropped"));
        // Progress lines alone went: the loop's picture is whole, from 0.
        let r = run(&[
            json!({"t": 0.0, "event": "header"}),
            json!({"t": 0.0, "event": "lines_dropped", "lines": 3, "task_progress": 3, "limit": 9}),
            json!({"t": 2.0, "event": "user_input", "turn": 1, "text": "go"}),
        ]);
        assert_eq!(r.start, 0.0);
        assert_eq!(r.segments[0].activity, Activity::Idle);
    }

    #[test]
    fn a_result_seen_by_polling_and_again_by_injection_is_marked_and_an_undrained_one_too() {
        let r = run(&[
            json!({"t": 0.0, "event": "task_queued", "task_id": "a", "command": "true"}),
            json!({"t": 0.1, "event": "task_finished", "task_id": "a", "status": "completed"}),
            json!({"t": 0.1, "event": "task_queued", "task_id": "b", "command": "false"}),
            json!({"t": 0.2, "event": "task_finished", "task_id": "b", "status": "completed", "exit_code": 1}),
            json!({"t": 0.3, "event": "model_call", "turn": 1, "call": 1}),
            json!({"t": 0.4, "event": "model_reply", "turn": 1, "call": 1}),
            json!({"t": 0.4, "event": "tool_call", "name": "check_background"}),
            json!({"t": 0.5, "event": "tool_result", "name": "check_background", "output": "a: [completed] true\nb: [completed] false"}),
            json!({"t": 0.6, "event": "inject", "call": 2, "task_ids": ["a"]}),
        ]);
        assert!(r.tasks[0].polled && r.tasks[1].polled);
        assert_eq!(r.tasks[1].drained, None);
        let picture = svg(&r);
        assert!(picture.contains("seen twice"));
        assert!(picture.contains("still queued when the trace ends"));
    }

    #[test]
    fn the_idle_time_in_a_span_adds_the_stretches_it_covers() {
        let idle = Idle::new(vec![(0.0, 1.0), (2.0, 4.0), (4.0, 5.0), (7.0, 8.0)]);
        let brute = |from: f64, to: f64| -> f64 {
            idle.stretches.iter().map(|&(a, b)| (b.min(to) - a.max(from)).max(0.0)).sum()
        };
        for (from, to) in [(0.0, 9.0), (0.5, 2.5), (1.0, 2.0), (3.0, 7.5), (4.5, 4.5), (6.0, 3.0)] {
            assert!((idle.between(from, to) - brute(from, to)).abs() < 1e-12, "{from} {to}");
        }
        assert_eq!(Idle::new(Vec::new()).between(0.0, 1.0), 0.0);
    }

    /// Ids are joined through a map: the first lane of an id queued twice gets its events, as
    /// when lanes were searched in order.
    #[test]
    fn a_task_id_queued_twice_joins_its_events_to_the_first_lane() {
        let r = run(&[
            json!({"t": 0.0, "event": "task_queued", "task_id": "a", "command": "one"}),
            json!({"t": 0.1, "event": "task_queued", "task_id": "a", "command": "two"}),
            json!({"t": 0.2, "event": "task_finished", "task_id": "a", "status": "completed"}),
            json!({"t": 0.3, "event": "tool_result", "name": "check_background",
                   "output": "x: [y]\na: [completed] one"}),
        ]);
        assert_eq!(r.tasks.len(), 2);
        assert_eq!((r.tasks[0].finished, r.tasks[1].finished), (Some(0.2), None));
        assert!(r.tasks[0].polled && !r.tasks[1].polled);
    }

    /// The step data of a page, as it stands between its script tags.
    fn step_data(page: &str) -> &str {
        let open = "<script id='step-data' type='application/json'>";
        let start = page.find(open).unwrap() + open.len();
        &page[start..start + page[start..].find("</script>").unwrap()]
    }

    /// `<!--<script>` in a reply made the HTML parser read the rest of the page as part of the
    /// data block, and so did a conditional comment cut at the 1,000 characters shown.
    #[test]
    fn no_text_can_change_where_the_step_data_ends() {
        let hostile = [
            "<!--<script>".to_string(),
            "</script><script>alert(1)</script>".to_string(),
            format!("{}<!--[if IE]><p>old</p><![endif]-->", "x".repeat(SHOWN - 6)),
            "a & b > c \u{2028} d \u{2029} e".to_string(),
        ];
        let mut lines = vec![json!({"t": 0.0, "event": "header", "mode": "production"})];
        for (i, reply) in hostile.iter().enumerate() {
            lines.push(json!({"t": 1.0, "event": "model_call", "turn": 1, "call": i + 1}));
            lines.push(json!({"t": 2.0, "event": "model_reply", "call": i + 1, "text": reply}));
        }
        let page = html(&run(&lines));
        let data = step_data(&page);
        assert!(!data.contains(['<', '>', '&', '\u{2028}', '\u{2029}']), "{data}");
        let steps: Value = serde_json::from_str(data).unwrap();
        for (step, reply) in steps.as_array().unwrap().iter().zip(&hostile) {
            assert_eq!(step["reply"], crate::text::prefix(reply, SHOWN));
        }
        assert_eq!(page.matches("<script").count(), 2, "the data block and the step-through");
    }

    /// `t` of ±1.7e308 made durations infinite (null in the page's data) and the step-through
    /// threw; a time that goes backwards made them negative.
    #[test]
    fn times_out_of_range_or_backwards_are_held_so_every_number_stays_finite() {
        let lines = [
            r#"{"t": 0, "event": "header", "mode": "production"}"#,
            r#"{"t": -1.7e308, "event": "model_call", "turn": 1, "call": 1}"#,
            r#"{"t": 1.7e308, "event": "model_reply", "call": 1}"#,
            r#"{"t": 1e999, "event": "turn_end"}"#, // out of f64's range: skipped
            r#"{"t": 1.7e308, "event": "task_queued", "task_id": "a", "command": "x"}"#,
            r#"{"t": 5, "event": "task_finished", "task_id": "a", "status": "completed",
                "stdout_bytes": 18446744073709551615, "stderr_bytes": 18446744073709551615}"#,
            r#"{"event": "model_call", "turn": 1, "call": 2}"#,
            r#"{"t": "soon", "event": "model_reply", "call": 2}"#,
        ];
        let r = Run::from_lines(lines);
        assert_eq!(r.end, LATEST);
        assert_eq!(r.steps[0].end - r.steps[0].start, LATEST);
        let times = r.segments.iter().flat_map(|s| [s.start, s.end]);
        let times = times.chain(r.steps.iter().flat_map(|s| [s.start, s.end]));
        assert!(times.clone().all(|t| (0.0..=LATEST).contains(&t)), "{r:?}");
        for s in &r.steps {
            assert!(s.end >= s.start);
        }
        let a = &r.tasks[0];
        assert_eq!((a.queued, a.finished, a.bytes), (LATEST, Some(LATEST), u64::MAX));
        let page = html(&r);
        let steps: Value = serde_json::from_str(step_data(&page)).unwrap();
        for step in steps.as_array().unwrap() {
            assert!(step["duration"].as_f64().is_some_and(f64::is_finite), "{step}");
            assert!(step["start"].as_f64().is_some_and(f64::is_finite), "{step}");
        }
        for word in ["inf", "NaN", "null"] {
            assert!(!svg(&r).contains(word), "{word}");
        }
    }

    /// An ANSI colour's ESC in a command made `--svg` invalid XML.
    #[test]
    fn characters_xml_does_not_allow_are_left_out_of_the_picture_and_page() {
        let command = "printf '\u{1b}[31mred\u{1b}[0m\u{0}\u{7}\u{fffe}\u{ffff}' \t ok";
        let r = run(&[
            json!({"t": 0.0, "event": "header", "mode": "production\u{1b}", "model": "m\u{0}"}),
            json!({"t": 0.1, "event": "task_queued", "task_id": "a\u{1b}", "command": command}),
            json!({"t": 0.2, "event": "task_finished", "task_id": "a\u{1b}", "status": "x\u{8}"}),
            json!({"t": 0.3, "event": "model_call", "turn": 1, "call": 1}),
            json!({"t": 0.4, "event": "model_reply", "call": 1, "stop_reason": "\u{1b}[0m"}),
        ]);
        let bad = |c: char| !xml_char(c);
        for text in [svg(&r), html(&r)] {
            assert!(!text.contains(bad), "{text:?}");
            assert!(text.contains("[31mred[0m"), "the rest of the command stays");
        }
        assert!(!text_between(&html(&r), "<body", "<script").contains(['\u{1b}', '\u{0}']));
    }

    fn text_between<'a>(s: &'a str, from: &str, to: &str) -> &'a str {
        let start = s.find(from).unwrap();
        &s[start..start + s[start..].find(to).unwrap()]
    }

    /// A trace cut inside a UTF-8 character was refused whole.
    #[test]
    fn a_last_line_cut_inside_a_character_is_left_out_and_the_rest_shows() {
        let header = br#"{"t": 0, "event": "header", "mode": "production"}"#;
        let task = |id: &str, command: &[u8]| {
            let line =
                format!(r#"{{"t": 1, "event": "task_queued", "task_id": "{id}", "command": ""#);
            [line.as_bytes(), command, b"\"}"].concat()
        };
        // "café" and a byte that is never UTF-8, then a line cut after é's first byte.
        let mut bytes = [&header[..], b"\n", &task("a", b"caf\xc3\xa9 \xff"), b"\n"].concat();
        let whole = Run::from_bytes(&bytes);
        assert!(!whole.cut_last_line);
        assert_eq!(whole.tasks[0].command, "café \u{fffd}", "a bad byte inside a line");
        let line = task("b", b"caf\xc3\xa9");
        bytes.extend_from_slice(&line[..line.len() - 3]);
        let cut = Run::from_bytes(&bytes);
        assert!(cut.cut_last_line);
        assert_eq!(cut.tasks.len(), 1);
        assert_eq!(cut.header.and_then(|h| h.mode).as_deref(), Some("production"));
        assert!(!Run::from_lines(["{}", "", "  "]).cut_last_line, "blank lines are not cut");
    }
}
