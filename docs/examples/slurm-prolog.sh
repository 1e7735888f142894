#!/bin/sh
# Slurm Prolog (or Epilog) for gpu-doctor (docs/slurm.md). Install it on every compute node,
# executable by root, and in slurm.conf:
#   Prolog=/etc/slurm/gpu-doctor-prolog.sh
#   SchedulerParameters=nohold_on_prolog_fail
# Before each job, a node that is not ready drains itself with gpu-doctor's reason and exits 1,
# which makes slurmd requeue the job (held, unless nohold_on_prolog_fail) so it does not run on
# a broken GPU node. The quick profile reads files only (milliseconds, no GPU calls), so it
# cannot disturb jobs already running on the node's other GPUs.
/usr/local/bin/gpu-doctor slurm-healthcheck --profile quick
rc=$?
# 2 is "no verdict": gpu-doctor's own trouble (a bad rule or configuration file, scontrol not
# answering). A Prolog that fails drains the node, so let the job run instead.
if [ "$rc" -eq 2 ]; then
    exit 0
fi
exit "$rc"
