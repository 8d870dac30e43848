#!/bin/sh
# PID 1 of the demo/web images. busybox httpd run as PID 1 ignores SIGTERM, so `docker stop`
# would wait its whole timeout; this wrapper stops the server and exits at once instead.
httpd -f -p 8080 -h /www &
server=$!
trap 'kill "$server" 2>/dev/null; exit 0' TERM INT
echo "web $APP_VERSION: listening on 8080"
wait "$server"
