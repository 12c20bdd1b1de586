//! placeholder, replaced by the crate's module map
