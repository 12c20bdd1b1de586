//! Kafka's `LineMessageReader`: how one stdin line becomes a record.

use std::collections::HashMap;

use bytes::Bytes;
use strom_client::ProducerRecord;

#[derive(Debug, Clone)]
pub struct LineReader {
    parse_key: bool,
    key_separator: String,
    parse_headers: bool,
    headers_delimiter: String,
    headers_separator: String,
    headers_key_separator: String,
    null_marker: Option<String>,
    pub ignore_error: bool,
}

fn flag(props: &HashMap<String, String>, key: &str) -> Result<bool, String> {
    match props.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(format!("property {key}: expected true or false, got '{v}'")),
    }
}

impl LineReader {
    pub fn from_properties(props: &HashMap<String, String>) -> Result<LineReader, String> {
        let get = |k: &str, default: &str| props.get(k).cloned().unwrap_or_else(|| default.to_owned());
        let reader = LineReader {
            parse_key: flag(props, "parse.key")?,
            key_separator: get("key.separator", "\t"),
            parse_headers: flag(props, "parse.headers")?,
            headers_delimiter: get("headers.delimiter", "\t"),
            headers_separator: get("headers.separator", ","),
            headers_key_separator: get("headers.key.separator", ":"),
            null_marker: props.get("null.marker").cloned(),
            ignore_error: flag(props, "ignore.error")?,
        };
        for (name, sep) in [
            ("key.separator", &reader.key_separator),
            ("headers.delimiter", &reader.headers_delimiter),
            ("headers.separator", &reader.headers_separator),
            ("headers.key.separator", &reader.headers_key_separator),
        ] {
            if sep.is_empty() {
                return Err(format!("property {name} must not be empty"));
            }
        }
        Ok(reader)
    }

    fn bytes_or_null(&self, s: &str) -> Option<Bytes> {
        if self.null_marker.as_deref() == Some(s) {
            None
        } else {
            Some(Bytes::copy_from_slice(s.as_bytes()))
        }
    }

    /// Parses line `line_number` (1-based, for error messages).
    pub fn parse(&self, line: &[u8], line_number: usize) -> Result<ProducerRecord, String> {
        if !self.parse_key && !self.parse_headers {
            // The common case: the raw bytes, whatever their encoding.
            return Ok(ProducerRecord::new(Bytes::copy_from_slice(line)));
        }
        let text = std::str::from_utf8(line).map_err(|_| {
            format!("Line number {line_number} is not valid UTF-8; it cannot be split into key and value")
        })?;
        let mut rest = text;
        let mut record = ProducerRecord::default();
        if self.parse_headers {
            let (headers, after) = rest
                .split_once(self.headers_delimiter.as_str())
                .ok_or_else(|| format!("No headers delimiter found on line number {line_number}: '{text}'"))?;
            for h in headers.split(self.headers_separator.as_str()).filter(|h| !h.is_empty()) {
                let (k, v) = match h.split_once(self.headers_key_separator.as_str()) {
                    Some((k, v)) => (k, self.bytes_or_null(v)),
                    None => (h, None),
                };
                record = record.with_header(k, v);
            }
            rest = after;
        }
        if self.parse_key {
            let (key, value) = rest
                .split_once(self.key_separator.as_str())
                .ok_or_else(|| format!("No key separator found on line number {line_number}: '{text}'"))?;
            record.key = self.bytes_or_null(key);
            record.value = self.bytes_or_null(value);
        } else {
            record.value = self.bytes_or_null(rest);
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(props: &[(&str, &str)]) -> LineReader {
        let map = props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        LineReader::from_properties(&map).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn plain_lines_are_values() {
        let r = reader(&[]).parse(b"hello world", 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.value.as_deref(), Some(&b"hello world"[..]));
        assert!(r.key.is_none());
    }

    #[test]
    fn keys_split_at_separator_and_missing_separator_names_line() {
        let r = reader(&[("parse.key", "true"), ("key.separator", ":")]);
        let rec = r.parse(b"k1:v:1", 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rec.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(rec.value.as_deref(), Some(&b"v:1"[..]));
        let err = r.parse(b"novalue", 7).err().unwrap_or_default();
        assert_eq!(err, "No key separator found on line number 7: 'novalue'");
    }

    #[test]
    fn headers_parse() {
        let r = reader(&[("parse.headers", "true"), ("parse.key", "true")]);
        let rec = r.parse(b"a:1,b\tk\tv", 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rec.headers.len(), 2);
        assert_eq!(rec.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(rec.value.as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn bad_flag_is_an_error() {
        let map = [("parse.key".to_string(), "yes".to_string())].into_iter().collect();
        assert!(LineReader::from_properties(&map).is_err());
    }
}
