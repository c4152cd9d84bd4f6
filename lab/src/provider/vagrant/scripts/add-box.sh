#!/bin/sh
# Adds the scenario's box file to lab's Vagrant home when the box is missing
# there or older than the file (a rebuilt box). The `vagrant box add` command
# comes after the parameters, as its words.
# Usage: add-box.sh BOX_FILE VAGRANT_HOME ADDED_METADATA BOX_NAME VAGRANT_COMMAND...
file=$1 home=$2 added=$3 name=$4
shift 4
test -f "$file" || { echo "no box file $file: build it with .ci/vm/box" >&2; exit 1; }
mkdir -p "$home" && chmod 0755 "$home"
if [ -f "$added" ] && [ -z "$(find "$file" -newer "$added")" ]; then
  echo "box $name is current"
else
  "$@"
fi
