#!/bin/sh
# Slurm HealthCheckProgram for gpu-doctor (docs/slurm.md). Install it on every compute node,
# executable by root, and in slurm.conf:
#   HealthCheckProgram=/etc/slurm/gpu-doctor-healthcheck.sh
#   HealthCheckInterval=300
#   HealthCheckNodeState=IDLE
# slurmd runs it with no PATH and no SLURM_CONF, only SLURMD_NODENAME (which gpu-doctor reads).
# scontrol then reads /etc/slurm/slurm.conf; when slurm.conf is elsewhere (a configless cluster:
# the copy slurmd keeps in /run/slurm/conf/slurm.conf), name it in the next line, uncommented:
# SLURM_CONF=/etc/slurm/slurm.conf; export SLURM_CONF
exec /usr/local/bin/gpu-doctor slurm-healthcheck --profile standard
