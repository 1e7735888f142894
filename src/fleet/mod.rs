//! Fleets: gpu-doctor run by the engines a fleet already has, never one of its own.
//!
//! Slurm calls `gpu-doctor slurm-healthcheck` as its HealthCheckProgram ([`slurm`]).
//! node-problem-detector and node_exporter need no code here: they read the `line` and `prom`
//! formats of `gpu-doctor check` (docs/kubernetes.md, docs/prometheus.md).
//!
//! Dependency direction: `app -> fleet -> {app's judging, report}`: a fleet command judges
//! exactly as `check` does, then acts on the verdict through the engine's own tools.

pub mod slurm;
