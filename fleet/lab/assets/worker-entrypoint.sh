#!/bin/sh
# PID 1 of the demo/worker image: a long-running process with no ports that stops on SIGTERM.
trap 'echo "worker $APP_VERSION: stopping"; exit 0' TERM INT
echo "worker $APP_VERSION: started"
while true; do
    sleep 30 &
    wait $!
    echo "worker $APP_VERSION: working"
done
