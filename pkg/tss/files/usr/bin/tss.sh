#!/bin/sh
# tss.sh [TCTI]: tpm2-abrmd, the TPM 2.0 access broker and resource manager, on the TPM named by TCTI (default
# device:/dev/tpm0; e.g. swtpm:host=127.0.0.1,port=2321 for a software TPM), registered on a private D-Bus
# session bus at /run/tss/bus (started here: there is no system bus). Clients in this container use it through
# the image's DBUS_SESSION_BUS_ADDRESS and TPM2TOOLS_TCTI (tabrmd:bus_type=session).
set -u
tcti=${1:-device:/dev/tpm0}
bus=${DBUS_SESSION_BUS_ADDRESS#unix:path=}
mkdir -p "${bus%/*}"
rm -f "$bus"
dbus-daemon --session --address="$DBUS_SESSION_BUS_ADDRESS" --nofork --nopidfile --nosyslog &
dbus=$!
i=0
while [ ! -S "$bus" ]; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 $dbus 2>/dev/null; then
		echo "tss: the D-Bus session bus did not start" >&2
		exit 1
	fi
	sleep 0.1
done
echo "tss: tpm2-abrmd on $tcti, bus $DBUS_SESSION_BUS_ADDRESS"
# on TERM: stop both
trap 'kill $abrmd $dbus 2>/dev/null; wait; exit 0' TERM INT
tpm2-abrmd --session --allow-root --tcti="$tcti" &
abrmd=$!
wait $abrmd
status=$?
kill $dbus 2>/dev/null
exit $status
