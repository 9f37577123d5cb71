#!/usr/bin/env bash
# Copies the runtime images from Docker into Podman (rootful), for the
# podman engine's tests: `docker save | podman load` of each tag Podman
# lacks takes seconds, where building them again would take minutes.
# Usage: scripts/podman-images.sh REF...   (the refs `cronium images list` shows)
set -euo pipefail
command -v podman >/dev/null || { echo "podman-images: podman is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
for ref in "$@"; do
  if podman image exists "$ref"; then
    continue
  fi
  echo "podman-images: loading $ref into podman"
  docker save "$ref" | podman load -q >/dev/null
  podman image exists "$ref" || { echo "podman-images: $ref did not load" >&2; exit 1; }
done
