//! gpu-doctor: probe the machine into Facts, judge the Facts with data-driven rules, report.
//!
//! Dependency direction: `cli -> app -> {probe, rules, report}`; `probe -> facts`;
//! `rules -> facts, knowledge`; `report -> facts, rules`.

pub mod app;
pub mod cli;
pub mod config;
pub mod facts;
pub mod files;
pub mod fix;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod gguf;
pub mod knowledge;
pub mod probe;
pub mod report;
pub mod rules;
pub mod shell;
pub mod signals;
