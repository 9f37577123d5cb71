#!/bin/sh
# Trims a Debian root file system into Cronium's package builder image.
# Usage: builder-hook.sh ROOT (mmdebstrap customize hook)
# Unlike the runtime images it keeps apt, dpkg, pip and npm: the builder
# resolves and downloads declared packages, as nobody, in a sandbox whose
# network reaches only the package indexes. It never runs a package's
# maintainer scripts, setup.py or npm install scripts.
set -eu
root=${1:?root directory}
mkdir -p "$root/usr/share/cronium" "$root/workspace" "$root/run/cronium"
# The build's output: the engine mounts a volume here, which takes this
# directory's owner, so that the build (nobody) can write it.
install -d -m 0755 -o 65534 -g 65534 "$root/out"
chroot "$root" dpkg-query -W -f '${Package} ${Version}\n' > "$root/usr/share/cronium/packages.txt"
grep -q '^cronium:' "$root/etc/passwd" || echo 'cronium:x:1000:1000:cronium:/workspace:/usr/sbin/nologin' >> "$root/etc/passwd"
grep -q '^cronium:' "$root/etc/group" || echo 'cronium:x:1000:' >> "$root/etc/group"
# The builder takes its package lists from the indexes it is given, never
# from the image: no sources, no lists.
rm -rf "$root"/etc/apt/sources.list "$root"/etc/apt/sources.list.d/* "$root"/var/lib/apt/lists/*
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/usr/share/locale/* "$root"/usr/share/lintian "$root"/var/log/* "$root"/var/cache/ldconfig/* \
  "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
find "$root" -xdev -type f -perm /6000 -exec chmod ug-s {} +
