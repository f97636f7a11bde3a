//! Error reports that say where: the file, line and column with the line quoted, the dotted
//! key, or the `QFTPD_*` variable a bad value came from.

use std::path::Path;

use super::load::env_provider;
use super::{Config, DEFAULT_PATH};

/// Where the configuration comes from, for messages: the file (given, or the default one
/// when it exists) and the environment.
pub fn describe_source(file: Option<&Path>) -> String {
    match file {
        Some(f) => format!("{} and QFTPD_* variables", f.display()),
        None if Path::new(DEFAULT_PATH).exists() => format!("{DEFAULT_PATH} and QFTPD_* variables"),
        None => format!("no {DEFAULT_PATH}; QFTPD_* variables only"),
    }
}

/// The error toml reports for the file alone, as `FILE, line L, column C: KEY: MESSAGE` with
/// the offending line quoted, unless the file is fine on its own (a missing key may come from
/// the environment).
pub(super) fn positioned(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let err = match toml::from_str::<Config>(&text) {
        Err(e) if !e.message().starts_with("missing field") => e,
        _ => return None,
    };
    let message = err.message().trim_end();
    let Some(span) = err.span().filter(|s| s.start <= text.len()) else {
        return Some(format!("{}: {message}", file.display()));
    };
    let key = key_at(&text, span.start)
        .map(|k| format!("{k}: "))
        .unwrap_or_default();
    let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let line_text = text[line_start..].lines().next().unwrap_or("");
    let line = text[..line_start].matches('\n').count() + 1;
    let column = text[line_start..span.start].chars().count() + 1;
    let marked = text.get(span.clone()).map_or(1, |s| {
        s.lines().next().map_or(1, |l| l.chars().count().max(1))
    });
    Some(format!(
        "{file}, line {line}, column {column}: {key}{message}\n{line:>5} | {line_text}\n      | {pad}{carets}",
        file = file.display(),
        pad = " ".repeat(column - 1),
        carets = "^".repeat(marked),
    ))
}

/// The dotted key at byte `offset` of a TOML document: the table header above it and the key
/// its line starts with (`[ftp]` … `timezone = "x"` → `ftp.timezone`; on a header line, the
/// header's own key). Exact for tables of `key = value` lines, which is the shape of qftpd's
/// configuration; inside an inline table or a value spanning lines, the outer key is named.
pub(super) fn key_at(text: &str, offset: usize) -> Option<String> {
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let mut key: Option<String> = None;
    for raw in text[..line_end].lines().rev() {
        let line = raw.trim();
        if line.starts_with('[') {
            let header = line.trim_start_matches('[');
            let header = header.split(']').next().unwrap_or("");
            let header = normalize_key(header);
            return Some(match key {
                Some(k) if header.is_empty() => k,
                Some(k) => format!("{header}.{k}"),
                None => header,
            });
        }
        if key.is_none()
            && !line.starts_with('#')
            && let Some((k, _)) = line.split_once('=')
        {
            key = Some(normalize_key(k));
        }
    }
    key
}

/// `ftp . "time-zone"` → `ftp.time-zone`.
fn normalize_key(key: &str) -> String {
    key.split('.')
        .map(|part| part.trim().trim_matches(|c| c == '"' || c == '\''))
        .collect::<Vec<_>>()
        .join(".")
}

/// One line per error, each naming the full key and where the value came from: the file, or
/// the `QFTPD_*` variable.
pub(super) fn describe(err: figment::Error) -> String {
    use figment::Provider as _;
    use figment::error::Kind;
    let env_name = env_provider().metadata().name;
    err.into_iter()
        .map(|e| {
            let mut path = e.path.clone();
            let what = match &e.kind {
                Kind::MissingField(field) if path.is_empty() && field == "qumulo" => {
                    path = vec!["qumulo".into(), "url".into()];
                    "missing: set the cluster's REST API, e.g. [qumulo] url = \"https://qumulo.example.com:8000\"".to_string()
                }
                Kind::MissingField(field) => {
                    path.push(field.to_string());
                    "missing".to_string()
                }
                Kind::UnknownField(field, expected) => {
                    if path.last() != Some(field) {
                        path.push(field.clone());
                    }
                    format!("unknown key; expected one of {}", expected.join(", "))
                }
                kind => kind.to_string(),
            };
            let key = if path.is_empty() {
                String::new()
            } else {
                format!("{}: ", path.join("."))
            };
            let origin = match e.metadata.as_ref() {
                Some(m) if m.name == env_name => format!(
                    " (from the environment variable QFTPD_{})",
                    path.join("__").replace('-', "_").to_ascii_uppercase()
                ),
                Some(m) => m
                    .source
                    .as_ref()
                    .map(|s| format!(" (in {s})"))
                    .unwrap_or_default(),
                None => String::new(),
            };
            format!("{key}{what}{origin}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}
