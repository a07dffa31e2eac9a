#!/bin/sh
# /usr/libexec/autologin: what getty runs instead of asking for a name (INSECURE=true).
exec /bin/login -f root
