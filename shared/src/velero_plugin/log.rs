//! JSON log lines on stderr, in the one form Velero's go-plugin client parses safely:
//! `@level` and `@message` are strings (a non-string there panics the Velero server),
//! no `@timestamp`, every other field a string too. Never log a secret's value.

use std::io::Write;

use serde_json::{Map, Value};

/// Levels go-plugin knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// `debug`.
    Debug,
    /// `info`.
    Info,
    /// `warn` (go-plugin's spelling).
    Warn,
    /// `error`.
    Error,
}

impl Level {
    /// The `@level` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// One log line (no newline). `source` becomes `logSource`, as Go plugins send it.
pub fn line(level: Level, message: &str, source: &str, fields: &[(&str, &str)]) -> String {
    let mut map = Map::new();
    map.insert("@level".into(), level.as_str().into());
    map.insert("@message".into(), message.into());
    map.insert("logSource".into(), source.into());
    for (k, v) in fields {
        // The reserved keys stay ours whatever a caller passes.
        if !k.starts_with('@') {
            map.insert((*k).to_owned(), (*v).into());
        }
    }
    Value::Object(map).to_string()
}

/// Writes one line to stderr; `logSource` is the caller's file and line.
#[track_caller]
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    let at = std::panic::Location::caller();
    let text = line(
        level,
        message,
        &format!("{}:{}", at.file(), at.line()),
        fields,
    );
    // One write per line under the lock, so concurrent handlers never interleave.
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// Why a stderr line would misbehave in Velero (for the test host).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogLineError {
    /// Not a JSON object: Velero logs it raw at debug, which our plugin never intends.
    #[error("not a JSON object: {0:?}")]
    NotJson(String),
    /// A value that is not a string (Velero panics on the reserved keys).
    #[error("field {0:?} is not a string")]
    NotString(String),
    /// A level go-plugin does not know.
    #[error("unknown @level {0:?}")]
    Level(String),
    /// `@timestamp` in the wrong layout.
    #[error("@timestamp {0:?} is not 2006-01-02T15:04:05.000000Z07:00")]
    Timestamp(String),
}

/// go-plugin's `parseJSON` rules, made strict: every field a string, as we emit them.
pub fn check_line(text: &str) -> Result<(), LogLineError> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return Err(LogLineError::NotJson(text.to_owned()));
    };
    for (k, v) in &map {
        if !v.is_string() {
            return Err(LogLineError::NotString(k.clone()));
        }
    }
    if let Some(level) = map.get("@level").and_then(Value::as_str)
        && !["trace", "debug", "info", "warn", "error"].contains(&level)
    {
        return Err(LogLineError::Level(level.to_owned()));
    }
    if let Some(ts) = map.get("@timestamp").and_then(Value::as_str)
        && jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S.%6f%:z", ts).is_err()
    {
        return Err(LogLineError::Timestamp(ts.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_pass_the_velero_rules() {
        let l = line(
            Level::Warn,
            "say \"hi\"\n",
            "src/x.rs:1",
            &[("item", "a/b"), ("@level", "42")],
        );
        check_line(&l).unwrap();
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["@level"], "warn");
        assert_eq!(v["@message"], "say \"hi\"\n");
        assert_eq!(v["item"], "a/b");
        assert!(!l.contains('\n'));
    }

    #[test]
    fn bad_lines_are_caught() {
        assert!(check_line("plain text").is_err());
        assert!(check_line(r#"{"@level":1}"#).is_err());
        assert!(check_line(r#"{"@level":"fatal"}"#).is_err());
        assert!(check_line(r#"{"@message":"m","n":3}"#).is_err());
        assert!(check_line(r#"{"@timestamp":"yesterday"}"#).is_err());
        check_line(r#"{"@timestamp":"2026-01-02T15:04:05.000000+00:00"}"#).unwrap();
    }
}
