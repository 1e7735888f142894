//! llama.cpp: where a model's layers really land.
//!
//! The offload proof of the full profile. A tiny synthetic GGUF model ([`crate::gguf`]) is run
//! with every layer requested on the GPU through each llama.cpp stack on this machine: the
//! doctor's own reference engine ([`engine`], llama-cpp-sys-2 in a child process), every Python
//! environment's llama-cpp-python, and llama.cpp binaries. The logs say where each layer went.

pub mod engine;
