//! Fuzz target: see `gpu_doctor::fuzzing::facts_reader` for what it drives.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gpu_doctor::fuzzing::facts_reader(data));
