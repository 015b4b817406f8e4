//! Benchmarks live in `benches/`; the side-by-side script is `compare.sh`.
