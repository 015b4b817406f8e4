//! placeholder while writing
mod support;
#[test]
fn placeholder() {}
