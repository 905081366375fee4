#!/usr/bin/env bash
# Vendors Redoc, the renderer of the API reference the gateway serves at /docs: npm pack fetches
# the pinned version from npm's registry, the tarball must have the pinned integrity (the sha512
# the registry publishes for it), and its standalone bundle (with its licence) is extracted
# into .cache/redoc/<version>/ (git-ignored), from where make run and docker compose serve it.
# A bundle already there is kept, so only the first run needs the registry. Prints the folder.
#
# To move to another version: `npm view redoc@<version> dist.integrity`, then change both pins
# here and the folder docker-compose.yml mounts.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=3.0.1
INTEGRITY=sha512-KDfoKaYW19LCl4YStgBnwlaNjYEFfs5zCNt1s1WZ2YM5u8d26Yuzd2l43fZO851ZsgIMe/D640fDJkD8eaRQKQ==
DIR=.cache/redoc/$VERSION

if [ -s "$DIR/redoc.standalone.js" ]; then
	echo "$DIR"
	exit 0
fi
for tool in npm openssl tar; do
	command -v "$tool" >/dev/null || { echo "vendor-redoc.sh: $tool is missing, and Redoc is not in $DIR yet" >&2; exit 1; }
done
echo "vendoring Redoc $VERSION into $DIR (npm pack redoc@$VERSION)" >&2
# Worked on next to the folder, so that it comes into place in one rename: an interrupted run
# leaves no half bundle to be kept.
mkdir -p "$(dirname "$DIR")"
work=$(mktemp -d "$(dirname "$DIR")/.vendor.XXXXXX")
trap 'rm -rf "$work"' EXIT
npm pack --silent --pack-destination "$work" "redoc@$VERSION" >"$work/pack.log" 2>&1 || { cat "$work/pack.log" >&2; exit 1; }
tgz=$work/redoc-$VERSION.tgz
# Computed here rather than taken from npm's report, so the pin is checked by this script.
got=sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)
if [ "$got" != "$INTEGRITY" ]; then
	echo "vendor-redoc.sh: redoc-$VERSION.tgz has integrity $got, but $INTEGRITY is pinned: not using it" >&2
	exit 1
fi
tar -xzf "$tgz" -C "$work" package/bundles/redoc.standalone.js package/LICENSE
mkdir -m 755 "$work/out" # readable by the gateway's workers, which do not run as root
mv "$work/package/bundles/redoc.standalone.js" "$work/package/LICENSE" "$work/out/"
rm -rf "$DIR"
mv "$work/out" "$DIR"
echo "$DIR"
