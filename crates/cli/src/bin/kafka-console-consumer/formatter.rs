//! Kafka's `DefaultMessageFormatter`: which fields of a record are printed and how.

use std::collections::HashMap;
use std::io::Write;

use kafka_protocol::records::TimestampType;
use strom_client::ConsumerRecord;

#[derive(Debug, Clone)]
pub struct Formatter {
    print_timestamp: bool,
    print_partition: bool,
    print_offset: bool,
    print_headers: bool,
    print_key: bool,
    print_value: bool,
    key_separator: Vec<u8>,
    line_separator: Vec<u8>,
    headers_separator: Vec<u8>,
    headers_key_separator: Vec<u8>,
    null_literal: Vec<u8>,
}

fn flag(props: &HashMap<String, String>, key: &str, default: bool) -> Result<bool, String> {
    match props.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(format!("property {key}: expected true or false, got '{v}'")),
    }
}

impl Formatter {
    pub fn from_properties(props: &HashMap<String, String>) -> Result<Formatter, String> {
        let text = |k: &str, default: &str| props.get(k).cloned().unwrap_or_else(|| default.to_owned()).into_bytes();
        Ok(Formatter {
            print_timestamp: flag(props, "print.timestamp", false)?,
            print_partition: flag(props, "print.partition", false)?,
            print_offset: flag(props, "print.offset", false)?,
            print_headers: flag(props, "print.headers", false)?,
            print_key: flag(props, "print.key", false)?,
            print_value: flag(props, "print.value", true)?,
            key_separator: text("key.separator", "\t"),
            line_separator: text("line.separator", "\n"),
            headers_separator: text("headers.separator", ","),
            headers_key_separator: text("headers.key.separator", ":"),
            null_literal: text("null.literal", "null"),
        })
    }

    pub fn write(&self, out: &mut impl Write, r: &ConsumerRecord) -> std::io::Result<()> {
        let columns = [
            self.print_timestamp,
            self.print_partition,
            self.print_offset,
            self.print_headers,
            self.print_key,
            self.print_value,
        ];
        // A separator follows a column only when some later column is printed.
        let more_after = |i: usize| columns[i + 1..].iter().any(|c| *c);
        if self.print_timestamp {
            match r.timestamp_type {
                _ if r.timestamp < 0 => out.write_all(b"NO_TIMESTAMP")?,
                TimestampType::Creation => write!(out, "CreateTime:{}", r.timestamp)?,
                TimestampType::LogAppend => write!(out, "LogAppendTime:{}", r.timestamp)?,
            }
            if more_after(0) {
                out.write_all(&self.key_separator)?;
            }
        }
        if self.print_partition {
            write!(out, "Partition:{}", r.partition)?;
            if more_after(1) {
                out.write_all(&self.key_separator)?;
            }
        }
        if self.print_offset {
            write!(out, "Offset:{}", r.offset)?;
            if more_after(2) {
                out.write_all(&self.key_separator)?;
            }
        }
        if self.print_headers {
            if r.headers.is_empty() {
                out.write_all(b"NO_HEADERS")?;
            }
            for (i, (k, v)) in r.headers.iter().enumerate() {
                if i > 0 {
                    out.write_all(&self.headers_separator)?;
                }
                out.write_all(k.as_bytes())?;
                out.write_all(&self.headers_key_separator)?;
                out.write_all(v.as_deref().unwrap_or(&self.null_literal))?;
            }
            if more_after(3) {
                out.write_all(&self.key_separator)?;
            }
        }
        if self.print_key {
            out.write_all(r.key.as_deref().unwrap_or(&self.null_literal))?;
            if more_after(4) {
                out.write_all(&self.key_separator)?;
            }
        }
        if self.print_value {
            out.write_all(r.value.as_deref().unwrap_or(&self.null_literal))?;
        }
        out.write_all(&self.line_separator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use indexmap::IndexMap;

    fn record() -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 1000,
            timestamp_type: TimestampType::Creation,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: IndexMap::new(),
        }
    }

    fn render(props: &[(&str, &str)]) -> String {
        let map = props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let f = Formatter::from_properties(&map).unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        f.write(&mut out, &record()).unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn default_prints_value_only() {
        assert_eq!(render(&[]), "v\n");
    }

    #[test]
    fn key_and_metadata_columns() {
        assert_eq!(render(&[("print.key", "true"), ("key.separator", ":")]), "k:v\n");
        assert_eq!(
            render(&[
                ("print.timestamp", "true"),
                ("print.partition", "true"),
                ("print.offset", "true"),
                ("print.headers", "true")
            ]),
            "CreateTime:1000\tPartition:2\tOffset:7\tNO_HEADERS\tv\n"
        );
        assert_eq!(render(&[("print.key", "true"), ("print.value", "false")]), "k\n");
    }
}
