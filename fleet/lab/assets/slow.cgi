#!/bin/sh
# A slow answer for swap tests: /cgi-bin/slow?SECONDS sleeps that long (at most 60), then
# answers with the image's version.
seconds=${QUERY_STRING:-3}
case "$seconds" in ''|*[!0-9]*) seconds=3 ;; esac
[ "$seconds" -gt 60 ] && seconds=60
sleep "$seconds"
printf 'Content-Type: text/plain\r\n\r\nslow %s %s\n' "$APP_VERSION" "$seconds"
