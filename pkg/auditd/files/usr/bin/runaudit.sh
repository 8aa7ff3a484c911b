#!/bin/sh
# Load the audit rules into the kernel, then run auditd in the foreground.
/sbin/auditctl -R /etc/audit/audit.rules || echo "runaudit: auditctl -R /etc/audit/audit.rules failed" >&2
exec /sbin/auditd -f "$@"
