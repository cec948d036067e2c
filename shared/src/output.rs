//! The one output path of every command: results on stdout (text, JSON or YAML), notes and
//! progress on stderr whatever the format, tables, the apply-able object stream of
//! `--dry-run`, and the confirmation prompt.
//!
//! Serialisation errors are returned, never turned into empty output; a closed stdout pipe
//! (`| head`) is not an error.

use std::io::{IsTerminal, Write};

use serde::Serialize;
use serde_json::Value;

/// How results are printed (`-o`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Output could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A value did not serialise (a bug: our types always should).
    #[error("cannot render {what} as {format}: {message}")]
    Serialize {
        /// What was rendered.
        what: &'static str,
        /// `JSON` or `YAML`.
        format: &'static str,
        /// The serialiser's message.
        message: String,
    },
    /// stdout could not be written.
    #[error("cannot write to stdout: {0}")]
    Write(#[source] std::io::Error),
}

/// A line for the person at the terminal (progress, warnings, what was done): stderr, in
/// every output format, so `-o json` stays parseable and nothing that changes what the
/// user gets is lost.
pub fn note(line: impl AsRef<str>) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", line.as_ref());
}

/// A line of the result for people, as kubectl prints `secret/x patched`: on stdout with
/// text output; on stderr with `-o json|yaml`, whose stdout holds only the document.
pub fn say(format: OutputFormat, line: impl AsRef<str>) {
    if format == OutputFormat::Text {
        let _ = print_stdout(&format!("{}\n", line.as_ref()));
    } else {
        note(line);
    }
}

/// Writes to stdout, treating a closed pipe (`| head`) as success.
pub fn print_stdout(text: &str) -> Result<(), OutputError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(OutputError::Write),
    }
}

/// Pretty JSON with a final newline.
pub fn to_json<T: Serialize>(value: &T, what: &'static str) -> Result<String, OutputError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| OutputError::Serialize {
        what,
        format: "JSON",
        message: e.to_string(),
    })?;
    text.push('\n');
    Ok(text)
}

/// YAML (one document).
pub fn to_yaml<T: Serialize>(value: &T, what: &'static str) -> Result<String, OutputError> {
    serde_saphyr::to_string(value).map_err(|e| OutputError::Serialize {
        what,
        format: "YAML",
        message: e.to_string(),
    })
}

/// A result: `text` for people, `value` for scripts (`-o json|yaml`).
pub fn emit<T: Serialize>(
    format: OutputFormat,
    text: &str,
    value: &T,
    what: &'static str,
) -> Result<(), OutputError> {
    let rendered = match format {
        OutputFormat::Text => text.to_owned(),
        OutputFormat::Json => to_json(value, what)?,
        OutputFormat::Yaml => to_yaml(value, what)?,
    };
    print_stdout(&rendered)
}

/// `--dry-run`: exactly the objects that would be created or patched, as a stream
/// `kubectl create -f -` / `kubectl apply -f -` accept: YAML documents (text and `-o yaml`)
/// or a `v1 List` (`-o json`), like `kubectl create --dry-run=client -o …`.
pub fn render_objects(format: OutputFormat, objects: &[Value]) -> Result<String, OutputError> {
    match format {
        OutputFormat::Json => to_json(
            &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects}),
            "the objects",
        ),
        OutputFormat::Text | OutputFormat::Yaml => {
            let mut text = String::new();
            for (i, object) in objects.iter().enumerate() {
                if i > 0 {
                    text.push_str("---\n");
                }
                text.push_str(&to_yaml(object, "an object")?);
            }
            Ok(text)
        }
    }
}

/// A typed object as JSON for printing, with the `apiVersion`/`kind` that k8s-openapi
/// types leave out of their serialisation.
pub fn object_value<T: Serialize>(
    object: &T,
    api_version: &str,
    kind: &str,
) -> Result<Value, OutputError> {
    let mut value = serde_json::to_value(object).map_err(|e| OutputError::Serialize {
        what: "an object",
        format: "JSON",
        message: e.to_string(),
    })?;
    value["apiVersion"] = api_version.into();
    value["kind"] = kind.into();
    Ok(value)
}

/// [`render_objects`] printed to stdout.
pub fn emit_objects(format: OutputFormat, objects: &[Value]) -> Result<(), OutputError> {
    print_stdout(&render_objects(format, objects)?)
}

/// A table for people: header row, no borders, sized to the terminal when stdout is one.
pub fn table<S: AsRef<str>>(header: &[&str], rows: impl IntoIterator<Item = Vec<S>>) -> String {
    table_with_width(header, rows, None)
}

/// [`table`], wrapped to `width` columns when given (else as [`table`] sizes it).
pub fn table_with_width<S: AsRef<str>>(
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<S>>,
    width: Option<u16>,
) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    match width {
        Some(w) => {
            table.set_width(w);
        }
        // Scripts and pipes get whole lines, never wrapped cells.
        None if !std::io::stdout().is_terminal() => {
            table.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
        }
        None => {}
    }
    for row in rows {
        table.add_row(row.iter().map(|c| c.as_ref().to_owned()));
    }
    // comfy-table pads the last column and indents by one space: trim for stable text.
    let mut text: String = table
        .to_string()
        .lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end().to_owned() + "\n")
        .collect();
    if text.is_empty() {
        text.push('\n');
    }
    text
}

/// The answer to a confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// Go ahead (`--yes`, or answered yes).
    Yes,
    /// Answered no.
    Declined,
    /// No terminal to ask on, and no `--yes`: refuse.
    NoTerminal,
}

/// Asks `prompt` on the terminal (default no); `--yes` skips the question. Without a
/// terminal on stdin and stderr it never guesses: [`Confirmation::NoTerminal`].
pub fn confirm(prompt: &str, yes: bool) -> Confirmation {
    if yes {
        return Confirmation::Yes;
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Confirmation::NoTerminal;
    }
    match dialoguer::Confirm::new()
        .with_prompt(prompt)
        .default(false)
        .interact()
    {
        Ok(true) => Confirmation::Yes,
        Ok(false) => Confirmation::Declined,
        Err(_) => Confirmation::NoTerminal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_streams_are_what_kubectl_reads() {
        let objects = vec![
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}),
        ];
        let yaml = render_objects(OutputFormat::Yaml, &objects).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
        assert_eq!(docs, objects);
        let json: Value =
            serde_json::from_str(&render_objects(OutputFormat::Json, &objects).unwrap()).unwrap();
        assert_eq!(json["kind"], "List");
        assert_eq!(json["items"], Value::Array(objects));
    }

    #[test]
    fn tables_align_columns_without_borders() {
        let text = table(
            &["NAME", "PHASE"],
            vec![vec!["a-long-name", "Completed"], vec!["b", "Failed"]],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let col = lines[0].find("PHASE").unwrap();
        assert_eq!(lines[1].find("Completed"), Some(col), "{text}");
        assert_eq!(lines[2].find("Failed"), Some(col), "{text}");
        assert!(!text.contains('|') && !text.contains('+'), "{text}");
    }

    #[test]
    fn tables_wrap_to_a_given_width() {
        let long = "word ".repeat(30);
        let text = table_with_width(&["NAME", "FINDING"], vec![vec!["a", long.trim()]], Some(40));
        assert!(text.lines().count() > 2, "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 40), "{text}");
    }

    #[test]
    fn confirmation_needs_a_terminal_or_yes() {
        assert_eq!(confirm("go?", true), Confirmation::Yes);
        // Under `cargo test` stdin is not a terminal.
        if !std::io::stdin().is_terminal() {
            assert_eq!(confirm("go?", false), Confirmation::NoTerminal);
        }
    }
}
