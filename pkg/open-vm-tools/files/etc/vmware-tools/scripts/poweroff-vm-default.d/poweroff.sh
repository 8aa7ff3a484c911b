#!/bin/sh
# A power-off from the hypervisor: ask init (pid 1, busybox: SIGUSR2 = power off) for a clean shutdown.
kill -USR2 1
exit 0
