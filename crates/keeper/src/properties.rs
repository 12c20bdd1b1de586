//! Java `.properties` syntax, as Kafka and ZooKeeper read their config files: `key=value`,
//! `key: value` or `key value`, `#`/`!` comments, `\` line continuation and escapes. Keeps the
//! line of every key so errors can name it.

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum PropertiesError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{file}: line {line}: {message}")]
    Syntax { file: String, line: usize, message: String },
}

#[derive(Debug, Clone, Default)]
pub struct Properties {
    values: BTreeMap<String, (String, usize)>,
}

impl Properties {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(v, _)| v.as_str())
    }
    /// The 1-based line a key was defined on (0 when absent).
    pub fn line_of(&self, key: &str) -> usize {
        self.values.get(key).map_or(0, |(_, l)| *l)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, (v, _))| (k.as_str(), v.as_str()))
    }
    pub fn set(&mut self, key: &str, value: &str) {
        self.values.insert(key.to_string(), (value.to_string(), 0));
    }
}

/// One `key=value` line (after continuation lines are joined), with the line it started on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Parses into a map; a key given twice keeps its last value, as `Properties.load` does.
pub fn parse(text: &str, file: &str) -> Result<Properties, PropertiesError> {
    let mut props = Properties::default();
    for e in entries(text, file)? {
        props.values.insert(e.key, (e.value, e.line));
    }
    Ok(props)
}

/// Every entry in file order, repeats included (for callers that apply overrides in order).
pub fn entries(text: &str, file: &str) -> Result<Vec<Entry>, PropertiesError> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let line_no = i + 1;
        let mut logical = raw.trim_start().to_string();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        while ends_with_odd_backslashes(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split(&logical);
        let key = unescape(key);
        if key.is_empty() {
            return Err(PropertiesError::Syntax {
                file: file.to_string(),
                line: line_no,
                message: format!("no key before the value in \"{raw}\""),
            });
        }
        out.push(Entry { key, value: unescape(value.trim_end()), line: line_no });
    }
    Ok(out)
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

fn split(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' => return (line[..i].trim_end(), line[i + 1..].trim_start()),
            b' ' | b'\t' => {
                let key = &line[..i];
                let rest = line[i..].trim_start();
                let rest = rest.strip_prefix(['=', ':']).unwrap_or(rest).trim_start();
                return (key, rest);
            }
            _ => i += 1,
        }
    }
    (line, "")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&hex),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_syntax() {
        let p = parse("# c\n! c\na=1\nb : 2\nc 3\nd=x\\\n  y\ne\\:f=g\nempty=\nu=\\u00e9\na=2\n", "t").unwrap();
        assert_eq!(p.get("u"), Some("é"));
        assert_eq!(entries("a=1\na=2\n", "t").unwrap().len(), 2);
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.get("b"), Some("2"));
        assert_eq!(p.get("c"), Some("3"));
        assert_eq!(p.get("d"), Some("xy"));
        assert_eq!(p.get("e:f"), Some("g"));
        assert_eq!(p.get("empty"), Some(""));
        assert_eq!(p.line_of("c"), 5);
        assert!(parse("=oops\n", "t").is_err());
    }
}
