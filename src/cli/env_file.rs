//! `.env` in the working directory. The lesson loads it over the environment, so `--mirror`
//! does too. Production works in repositories it did not write, so it takes from the file only
//! the model name and the credentials, and only where the environment has none: a repository's
//! `.env` must not choose where the key is sent (`ANTHROPIC_BASE_URL`, proxies, certificates)
//! or what code runs (`LD_PRELOAD`, `PATH`, `PYTHONPATH`).

use std::io::Read;
use std::path::Path;

/// The largest `.env` read: far above any real one, and a bound on what a hostile one costs.
pub const LIMIT: u64 = 1 << 20;

/// The flag that lets production take `ANTHROPIC_BASE_URL` from `.env`.
pub const TRUST_BASE_URL_FLAG: &str = "--trust-dotenv-base-url";

const MODEL: &str = "MODEL_ID";
const BASE_URL: &str = "ANTHROPIC_BASE_URL";

/// The text of `path` if it is a regular file of at most [`LIMIT`] bytes in UTF-8; `Ok(None)`
/// when there is no such file; otherwise why it was not read. Never blocks on a FIFO and never
/// reads a device.
pub fn read(path: &Path) -> Result<Option<String>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.display();
    let refuse = |why: &str| Err(format!("{name} {why}; not read"));
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {name}: {e}")),
        Ok(meta) if !meta.is_file() => return refuse("is not a regular file"),
        Ok(_) => {}
    }
    // O_NONBLOCK: if the file was swapped for a FIFO since the check, the open still returns.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot read {name}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read {name}: {e}"))?;
    if !meta.is_file() {
        return refuse("is not a regular file");
    }
    let too_big = || refuse("is larger than 1 MiB");
    if meta.len() > LIMIT {
        return too_big();
    }
    let mut bytes = Vec::new();
    file.take(LIMIT + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read {name}: {e}"))?;
    if bytes.len() as u64 > LIMIT {
        return too_big(); // it grew while being read
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Some(text)),
        Err(_) => refuse("is not UTF-8 text"),
    }
}

/// The `NAME=value` bindings of a `.env` text, in file order. Values are taken literally: quotes
/// are removed (`"..."` with backslash escapes, `'...'` as written, either may span lines), an
/// unquoted value ends at ` #`; `${VAR}` is not expanded, so the file cannot copy another
/// variable (the key) into one tasks see. `export NAME=value` is read as `NAME=value`; a line
/// that is not a binding is skipped; a quote that never closes ends the reading (what follows
/// could only be read by scanning to the end again for each line).
pub fn parse(text: &str) -> Vec<(String, String)> {
    let mut bindings = Vec::new();
    let mut rest = text.strip_prefix('\u{feff}').unwrap_or(text);
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return bindings;
        }
        match binding(rest) {
            Line::Binding(name, value, after) => {
                bindings.push((name.to_string(), value));
                rest = after;
            }
            Line::Other => rest = rest.split_once('\n').map_or("", |(_, next)| next),
            Line::Unclosed => return bindings,
        }
    }
}

/// What a line of `.env` is.
enum Line<'a> {
    /// A name, its value, and the text after its line.
    Binding(&'a str, String, &'a str),
    /// Not a binding.
    Other,
    /// A quoted value that never closes.
    Unclosed,
}

fn binding(text: &str) -> Line<'_> {
    match binding_or_not(text) {
        Some(Ok((name, value, after))) => Line::Binding(name, value, after),
        Some(Err(Unclosed)) => Line::Unclosed,
        None => Line::Other,
    }
}

struct Unclosed;

/// One binding at the start of `text`, and the text after its line.
#[allow(clippy::type_complexity)]
fn binding_or_not(text: &str) -> Option<Result<(&str, String, &str), Unclosed>> {
    let blank = |c: char| c == ' ' || c == '\t';
    let text = match text.strip_prefix("export") {
        Some(after) if after.starts_with(blank) => after.trim_start_matches(blank),
        _ => text,
    };
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .unwrap_or(text.len());
    let (name, after_name) = text.split_at(end);
    let raw = after_name.trim_start_matches(blank).strip_prefix('=')?;
    if name.is_empty() {
        return None;
    }
    let raw = raw.trim_start_matches(blank);
    let line_end = |s: &str| s.find('\n').unwrap_or(s.len());
    let (value, after) = match raw.chars().next() {
        Some('\'') => {
            let Some(close) = raw[1..].find('\'') else { return Some(Err(Unclosed)) };
            (raw[1..close + 1].to_string(), &raw[close + 2..])
        }
        Some('"') => {
            let Some((value, used)) = double_quoted(&raw[1..]) else {
                return Some(Err(Unclosed));
            };
            (value, &raw[1 + used..])
        }
        _ => {
            let line = &raw[..line_end(raw)];
            let line = line.strip_suffix('\r').unwrap_or(line);
            let value = match line.find(" #").or_else(|| line.find("\t#")) {
                Some(comment) => &line[..comment],
                None => line,
            };
            (value.trim_end().to_string(), &raw[line.len()..])
        }
    };
    // Whatever follows a closing quote on its line (a comment) is not part of the value.
    let after = &after[line_end(after)..];
    Some(Ok((name, value, after)))
}

/// The value of a `"..."` whose opening quote came just before `text`, and the bytes of `text`
/// it took, closing quote included; `None` when it never closes.
fn double_quoted(text: &str) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, i + 1)),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'r' => value.push('\r'),
                other @ ('"' | '\\' | '$' | '\'') => value.push(other),
                other => {
                    value.push('\\');
                    value.push(other);
                }
            },
            c => value.push(c),
        }
    }
    None
}

/// What production takes from `.env`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Set in the environment, in file order.
    pub apply: Vec<(String, String)>,
    /// Named in the file and left out, sorted, each once.
    pub ignored: Vec<String>,
}

/// Production's rule. `MODEL_ID` is taken where the environment has none; the credentials
/// (`ANTHROPIC_API_KEY`, `ANTHROPIC_AUTH_TOKEN`) only where the environment has neither (a key
/// of the file's must not sit beside the user's and be sent in its place);
/// `ANTHROPIC_BASE_URL` like `MODEL_ID`, and only with `trust_base_url`. Every other name is
/// ignored, and so is a value holding a NUL byte (no environment can carry it). Where a name
/// is bound twice, the last binding counts. `is_set` says whether the environment has a
/// non-empty value for a name.
pub fn decide(
    bindings: &[(String, String)],
    is_set: impl Fn(&str) -> bool,
    trust_base_url: bool,
) -> Decision {
    let user_has_credentials = crate::secrets::SECRET_VARS.iter().any(|name| is_set(name));
    let last: std::collections::HashMap<&str, usize> =
        bindings.iter().enumerate().map(|(i, (name, _))| (name.as_str(), i)).collect();
    let mut decision = Decision::default();
    for (i, (name, value)) in bindings.iter().enumerate() {
        if last[name.as_str()] != i {
            continue;
        }
        let allowed = match name.as_str() {
            MODEL => !is_set(name),
            BASE_URL if trust_base_url => !is_set(name),
            n if crate::secrets::SECRET_VARS.contains(&n) => !user_has_credentials,
            // Not named in the warning: the environment's value is simply kept.
            _ => {
                decision.ignored.push(name.clone());
                continue;
            }
        };
        if allowed && !value.contains('\0') {
            decision.apply.push((name.clone(), value.clone()));
        } else if allowed {
            decision.ignored.push(name.clone());
        }
    }
    decision.ignored.sort();
    decision.ignored.dedup();
    decision
}

/// The one stderr line for the names production ignored (at most ten named); `None` if none.
pub fn warning(ignored: &[String]) -> Option<String> {
    const SHOWN: usize = 10;
    if ignored.is_empty() {
        return None;
    }
    let mut names = ignored.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if ignored.len() > SHOWN {
        names.push_str(&format!(" and {} more", ignored.len() - SHOWN));
    }
    let mut line = format!(
        "bgagent: .env: ignored {names} (it may set only MODEL_ID, ANTHROPIC_API_KEY and \
         ANTHROPIC_AUTH_TOKEN, where the environment does not"
    );
    if ignored.iter().any(|n| n == BASE_URL) {
        line.push_str(&format!("; ANTHROPIC_BASE_URL only with {TRUST_BASE_URL_FLAG}"));
    }
    line.push(')');
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parse_reads_the_usual_forms_literally() {
        let text = "\u{feff}# a comment\n\
                    export MODEL_ID=claude-x\n\
                    \n  A = spaced \n\
                    B=\"two ${A}\\n\\\"q\\\"\" # after\n\
                    C='one ${B} \\n'\n\
                    D=unquoted value # comment\n\
                    E=#not-a-comment\n\
                    F=\n\
                    not a binding\n\
                    G=\"multi\nline\"\n\
                    H=crlf\r\n\
                    I='never closed\n\
                    J=last";
        assert_eq!(
            parse(text),
            pairs(&[
                ("MODEL_ID", "claude-x"),
                ("A", "spaced"),
                ("B", "two ${A}\n\"q\""),
                ("C", "one ${B} \\n"),
                ("D", "unquoted value"),
                ("E", "#not-a-comment"),
                ("F", ""),
                ("G", "multi\nline"),
                ("H", "crlf"),
            ])
        );
        // A quote that never closes ends the reading: scanning on from each following line
        // would make a hostile file cost time quadratic in its size.
        assert_eq!(parse("I='never closed\nJ=last"), pairs(&[]));
        assert_eq!(parse("A=1\nB=\"open\nC=3"), pairs(&[("A", "1")]));
    }

    #[test]
    fn production_takes_only_the_model_and_credentials_the_environment_lacks() {
        let file = pairs(&[
            ("MODEL_ID", "from-file"),
            ("ANTHROPIC_API_KEY", "file-key"),
            ("ANTHROPIC_BASE_URL", "http://evil.example"),
            ("HTTPS_PROXY", "http://evil.example:8080"),
            ("SSL_CERT_FILE", "evil.pem"),
            ("LD_PRELOAD", "/tmp/evil.so"),
            ("PATH", "/tmp/evil"),
            ("PYTHONPATH", "."),
        ]);
        let nothing_set = decide(&file, |_| false, false);
        assert_eq!(
            nothing_set.apply,
            pairs(&[("MODEL_ID", "from-file"), ("ANTHROPIC_API_KEY", "file-key")])
        );
        assert_eq!(
            nothing_set.ignored,
            [
                "ANTHROPIC_BASE_URL",
                "HTTPS_PROXY",
                "LD_PRELOAD",
                "PATH",
                "PYTHONPATH",
                "SSL_CERT_FILE"
            ]
        );

        // The environment's values stay; those are not named as ignored.
        let all_set = decide(&file, |_| true, true);
        assert_eq!(all_set.apply, []);
        assert!(!all_set.ignored.contains(&"MODEL_ID".to_string()));
        assert!(!all_set.ignored.contains(&"ANTHROPIC_BASE_URL".to_string()));

        let trusted = decide(&file, |_| false, true);
        assert!(trusted
            .apply
            .contains(&("ANTHROPIC_BASE_URL".into(), "http://evil.example".into())));
        assert!(!trusted.ignored.contains(&"ANTHROPIC_BASE_URL".to_string()));
    }

    #[test]
    fn a_file_key_never_joins_a_user_credential() {
        let file = pairs(&[("ANTHROPIC_API_KEY", "file-key"), ("ANTHROPIC_AUTH_TOKEN", "t")]);
        let user_token = decide(&file, |n| n == "ANTHROPIC_AUTH_TOKEN", false);
        assert_eq!(user_token.apply, []);
        let user_key = decide(&file, |n| n == "ANTHROPIC_API_KEY", false);
        assert_eq!(user_key.apply, []);
        assert_eq!(decide(&file, |_| false, false).apply, file);
    }

    #[test]
    fn the_last_binding_counts_and_nul_bytes_are_refused() {
        let file = pairs(&[("MODEL_ID", "first"), ("MODEL_ID", "second"), ("LD_PRELOAD", "x")]);
        let decision = decide(&file, |_| false, false);
        assert_eq!(decision.apply, pairs(&[("MODEL_ID", "second")]));
        assert_eq!(decision.ignored, ["LD_PRELOAD"]);
        let nul = decide(&pairs(&[("MODEL_ID", "a\0b")]), |_| false, false);
        assert_eq!((nul.apply, nul.ignored), (vec![], vec!["MODEL_ID".to_string()]));
    }

    #[test]
    fn the_warning_is_one_line_and_names_the_flag_only_for_the_base_url() {
        assert_eq!(warning(&[]), None);
        let plain = warning(&["LD_PRELOAD".into(), "PATH".into()]).unwrap();
        assert!(plain.starts_with("bgagent: .env: ignored LD_PRELOAD, PATH ("), "{plain}");
        assert!(!plain.contains(TRUST_BASE_URL_FLAG) && !plain.contains('\n'), "{plain}");
        let base = warning(&["ANTHROPIC_BASE_URL".into()]).unwrap();
        assert!(base.contains(TRUST_BASE_URL_FLAG), "{base}");
        let many: Vec<String> = (0..25).map(|i| format!("V{i:02}")).collect();
        assert!(warning(&many).unwrap().contains("V09 and 15 more ("));
    }

    #[test]
    fn read_takes_only_a_bounded_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        assert_eq!(read(&path), Ok(None));
        std::fs::write(&path, "MODEL_ID=m\n").unwrap();
        assert_eq!(read(&path), Ok(Some("MODEL_ID=m\n".into())));
        std::fs::write(&path, vec![b'#'; LIMIT as usize + 1]).unwrap();
        assert!(read(&path).unwrap_err().ends_with("is larger than 1 MiB; not read"));
        std::fs::write(&path, b"A=\xff\n").unwrap();
        assert!(read(&path).unwrap_err().ends_with("is not UTF-8 text; not read"));
        std::fs::remove_file(&path).unwrap();
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(read(&path).unwrap_err().ends_with("is not a regular file; not read"));
        assert!(read(Path::new("/dev/zero")).unwrap_err().contains("is not a regular file"));
    }
}
