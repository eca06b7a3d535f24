#!/bin/sh
# Apply the migrations, then serve. Configuration comes from USERMGMT_* variables; WORKERS sets the process count.
set -eu

usermgmt migrate && exec usermgmt serve --host 0.0.0.0 --port 8000 --workers "${WORKERS:-2}"
