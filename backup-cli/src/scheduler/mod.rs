//! The scheduler behind `schedule run` and `schedule list`: which jobs the
//! profiles ask for ([`jobs`]), how many run at once and in which order
//! ([`queue`]), its `[schedule]` settings ([`config`]), and what it tells
//! monitoring ([`metrics`]).

pub mod config;
pub mod jobs;
pub mod metrics;
pub mod queue;
