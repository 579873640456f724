#!/usr/bin/env bash
# Build the otelbridge container image from deploy/container/Containerfile with podman.
#
# No image registry is needed: the Containerfile's base (python:3.11-slim-bookworm) is made here
# from Debian bookworm packages (debootstrap minbase + python3 + python3-venv, Python 3.11 like
# the upstream image), its rootfs tarball cached under ~/.cache/otelbridge/base-<hash>/, and
# `podman import`ed under that name. The project's wheels are built on the host into the build
# context, so the image build itself needs no network. Installs podman and debootstrap with
# apt-get when missing (as root).
#
# The built image is also exported (its filesystem as rootfs.tar, its config as image.json) to
# ~/.cache/otelbridge/image-<hash of the base, Containerfile and sources>/; while that directory
# and the tagged image both exist, the script rebuilds nothing. Prints the image name, then the
# export directory, on the last two lines of stdout.
#
# Environment: PYTHON (host interpreter building the wheels, default python3), OTELBRIDGE_CACHE,
# OTELBRIDGE_IMAGE (tag to build, default localhost/otelbridge:<version>).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_root="${OTELBRIDGE_CACHE:-$HOME/.cache/otelbridge}"
containerfile="$here/deploy/container/Containerfile"
BASE_IMAGE="$(sed -n 's/^FROM[[:space:]]\+\([^[:space:]]\+\).*/\1/p' "$containerfile" | head -n1)"
SUITE="bookworm"
MIRROR="${OTELBRIDGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="python3,python3-venv,ca-certificates"

need() {  # need COMMAND PACKAGE: install a Debian package when its command is missing
  command -v "$1" >/dev/null && return 0
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    echo "image: installing Debian's $2 package" >&2
    (apt-get install -y -qq "$2" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }) >&2
  fi
  command -v "$1" >/dev/null || { echo "image: $1 is required (apt-get install $2)" >&2; exit 1; }
}
need podman podman
need debootstrap debootstrap

# 1. The base rootfs, built once per suite/package list and kept as a tarball.
base_key="$(echo "$SUITE $PACKAGES $MIRROR $BASE_IMAGE" | sha256sum | cut -c1-16)"
base_dir="$cache_root/base-$base_key"
base_tar="$base_dir/rootfs.tar"
if [[ ! -s "$base_tar" ]]; then
  start=$(date +%s)
  echo "image: debootstrapping $SUITE ($PACKAGES) into $base_dir (several minutes, once)" >&2
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$work/root" "$MIRROR" >&2
  # What a slim image leaves out: package caches, indexes, docs, man pages, translations.
  rm -rf "$work"/root/var/cache/apt/* "$work"/root/var/lib/apt/lists/* "$work"/root/usr/share/doc/* \
    "$work"/root/usr/share/man/* "$work"/root/usr/share/locale/* "$work"/root/var/log/*
  mkdir -p "$base_dir"
  tar -C "$work/root" --numeric-owner -cf "$base_tar.tmp" .
  mv "$base_tar.tmp" "$base_tar"
  rm -rf "$work"
  trap - EXIT
  echo "image: base rootfs built in $(( $(date +%s) - start )) s" >&2
fi
imported="$(podman image inspect --format '{{ index .Config.Labels "org.otelbridge.base" }}' "$BASE_IMAGE" 2>/dev/null || true)"
if [[ "$imported" != "$base_key" ]]; then
  echo "image: importing $base_tar as $BASE_IMAGE" >&2
  podman import --change "LABEL org.otelbridge.base=$base_key" --change 'CMD ["python3"]' \
    "$base_tar" "$BASE_IMAGE" >&2
fi

# 2. The project's wheels (and its dependencies'), for an offline install inside the build.
py="${PYTHON:-python3}"
"$py" -c "import sys; sys.exit(sys.version_info[:2] != (3, 11))" || {
  echo "image: $py must be Python 3.11 (the image's) to build its wheels; set PYTHON" >&2; exit 1; }
version="$("$py" -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$here/pyproject.toml")"
image="${OTELBRIDGE_IMAGE:-localhost/otelbridge:$version}"
inputs_key="$( { echo "$base_key"; cat "$containerfile" "${BASH_SOURCE[0]}"; "$py" --version;
  cd "$here" && find otelbridge pyproject.toml README.md -type f ! -path '*/__pycache__/*' \
    | LC_ALL=C sort | xargs sha256sum; } | sha256sum | cut -c1-16)"
export_dir="$cache_root/image-$inputs_key"
built="$(podman image inspect --format '{{ index .Config.Labels "org.otelbridge.inputs" }}' "$image" 2>/dev/null || true)"
if [[ "$built" == "$inputs_key" && -s "$export_dir/rootfs.tar" && -s "$export_dir/image.json" ]]; then
  echo "image: reusing $image and its export $export_dir" >&2
  printf '%s\n%s\n' "$image" "$export_dir"
  exit 0
fi
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
echo "image: building wheels" >&2
"$py" -m pip wheel -q --wheel-dir "$context/wheels" "$here" >&2
cp "$containerfile" "$context/Containerfile"

# 3. The image. Docker format keeps the HEALTHCHECK (OCI image config has no field for it).
previous="$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
start=$(date +%s)
podman build --isolation chroot --format docker --pull=never --label "org.otelbridge.inputs=$inputs_key" \
  -t "$image" -f "$context/Containerfile" "$context" >&2
echo "image: built $image in $(( $(date +%s) - start )) s" >&2
# The build this one replaces is now untagged: remove it (layers it shares stay).
if [[ -n "$previous" && "$previous" != "$(podman image inspect --format '{{.Id}}' "$image")" ]]; then
  podman rmi "$previous" >/dev/null 2>&1 || true
fi

# 4. Its filesystem and config, for running it without a container runtime (see tests/deploy).
mkdir -p "$export_dir"
container="$(podman create --no-healthcheck "$image")"
podman export -o "$export_dir/rootfs.tar.tmp" "$container" >&2
podman rm "$container" >/dev/null
podman image inspect "$image" > "$export_dir/image.json.tmp"
mv "$export_dir/rootfs.tar.tmp" "$export_dir/rootfs.tar"
mv "$export_dir/image.json.tmp" "$export_dir/image.json"
# Each source change makes a new export (~200 MB): keep the three newest.
ls -dt "$cache_root"/image-* | tail -n +4 | xargs -r rm -rf
printf '%s\n%s\n' "$image" "$export_dir"
