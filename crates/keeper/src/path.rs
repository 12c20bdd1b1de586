//! ZooKeeper's path rules (`PathUtils.validatePath`) and small path helpers.

use crate::error::KeeperError;

/// Validates an absolute znode path. `sequential` allows a trailing `/` (the server appends
/// the sequence number to it), as ZooKeeper does for sequential creates.
pub fn validate(path: &str, sequential: bool) -> Result<(), KeeperError> {
    let bad = |why: &str| Err(KeeperError::BadArguments(format!("invalid path \"{path}\": {why}")));
    if path.is_empty() {
        return bad("path length must be > 0");
    }
    if !path.starts_with('/') {
        return bad("path must start with / character");
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') && !sequential {
        return bad("path must not end with / character");
    }
    let body = if sequential && path.ends_with('/') { &path[..path.len() - 1] } else { path };
    for segment in body[1..].split('/') {
        if segment.is_empty() {
            return bad("empty node name specified");
        }
        if segment == "." || segment == ".." {
            return bad("relative paths not allowed");
        }
    }
    for c in path.chars() {
        let code = c as u32;
        if c == '\0' {
            return bad("null character not allowed");
        }
        if (0x01..=0x1f).contains(&code)
            || (0x7f..=0x9f).contains(&code)
            || (0xd800..=0xf8ff).contains(&code)
            || (0xfff0..=0xffff).contains(&code)
        {
            return bad("invalid character");
        }
    }
    Ok(())
}

/// The parent of an absolute path (`/a/b` → `/a`, `/a` → `/`). `None` for the root.
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The last segment of a path (`/a/b` → `b`).
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Joins a parent and a child name.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// Whether `path` is `ancestor` itself or lies beneath it.
pub fn is_within(path: &str, ancestor: &str) -> bool {
    if ancestor == "/" {
        return true;
    }
    path == ancestor
        || (path.len() > ancestor.len() && path.starts_with(ancestor) && path.as_bytes()[ancestor.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_zookeeper() {
        assert!(validate("/", false).is_ok());
        assert!(validate("/a/b-c.d_e", false).is_ok());
        assert!(validate("", false).is_err());
        assert!(validate("a", false).is_err());
        assert!(validate("/a/", false).is_err());
        assert!(validate("/a/", true).is_ok());
        assert!(validate("/a//b", false).is_err());
        assert!(validate("/a/./b", false).is_err());
        assert!(validate("/a/../b", false).is_err());
        assert!(validate("/a\u{1}b", false).is_err());
    }

    #[test]
    fn helpers() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(name("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert!(is_within("/a/b", "/a"));
        assert!(!is_within("/ab", "/a"));
        assert!(is_within("/x", "/"));
    }
}
