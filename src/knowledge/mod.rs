//! Typed access to the compatibility tables in rules/knowledge/*.toml (embedded at build time),
//! and the values derived once from Facts and those tables for rules and fix commands.

pub mod derive;
