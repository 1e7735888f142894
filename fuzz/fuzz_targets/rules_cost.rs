//! Fuzz target: see `gpu_doctor::fuzzing::rules_cost` for what it drives.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gpu_doctor::fuzzing::rules_cost(data));
