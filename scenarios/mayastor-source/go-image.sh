#!/bin/sh
# A Go command built in the current module (lab's copy of the component's
# source) into an image FROM scratch, static, entrypoint /NAME.
# usage: go-image.sh IMAGE PACKAGE NAME [go build flags...]
set -eu
image=${1:?usage: go-image.sh IMAGE PACKAGE NAME [FLAGS...]}
package=${2:?usage: go-image.sh IMAGE PACKAGE NAME [FLAGS...]}
name=${3:?usage: go-image.sh IMAGE PACKAGE NAME [FLAGS...]}
shift 3
out=$(mktemp -d "${TMPDIR:-/tmp}/lab-go-image.XXXXXX")
trap 'rm -rf "$out"' EXIT
echo "go-image: go build $package → $image"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" "$@" -o "$out/$name" "$package"
printf 'FROM scratch\nCOPY %s /%s\nENTRYPOINT ["/%s"]\n' "$name" "$name" "$name" > "$out/Dockerfile"
docker build -q -t "$image" "$out" >/dev/null
