#!/bin/sh
# Trims a Debian root file system into a Cronium runtime image.
# Usage: hook.sh ROOT   (mmdebstrap customize hook, or "/" inside a Dockerfile)
# It keeps the interpreter and what helpers need, and removes the package
# manager, documentation, perl and every setuid/setgid bit.
set -eu
root=${1:?root directory}

# What the image contains, for the README and for `cronium images list`.
mkdir -p "$root/usr/share/cronium"
chroot "$root" dpkg-query -W -f '${Package} ${Version}\n' > "$root/usr/share/cronium/packages.txt"
# The package database, for package builds: apt then downloads only what
# the image lacks. It still lists perl, dpkg and apt, removed below (the
# essential packages depend on them): no layer brings them back either.
cp "$root/var/lib/dpkg/status" "$root/usr/share/cronium/dpkg-status"

# The script users: nobody (65534) comes from base-passwd; cronium is the
# user of the standard and trusted profiles.
grep -q '^cronium:' "$root/etc/passwd" || echo 'cronium:x:1000:1000:cronium:/workspace:/usr/sbin/nologin' >> "$root/etc/passwd"
grep -q '^cronium:' "$root/etc/group" || echo 'cronium:x:1000:' >> "$root/etc/group"
mkdir -p "$root/workspace" "$root/run/cronium"
# /run/secrets is not created: the engine mounts it as a tmpfs owned by the
# script user, and an image directory there would lend the mount its owner.

# No package manager.
rm -rf "$root"/usr/bin/dpkg* "$root"/usr/bin/apt* "$root"/usr/sbin/dpkg* \
  "$root"/var/lib/dpkg "$root"/var/lib/apt "$root"/var/cache/apt "$root"/var/cache/debconf \
  "$root"/etc/apt "$root"/etc/dpkg "$root"/usr/share/dpkg "$root"/usr/lib/apt \
  "$root"/usr/share/debconf "$root"/usr/share/perl5/Debconf "$root"/usr/bin/debconf*
# No perl (essential in Debian, needed only by maintainer scripts).
rm -rf "$root"/usr/bin/perl* "$root"/usr/lib/x86_64-linux-gnu/perl-base "$root"/usr/lib/*/perl-base \
  "$root"/usr/share/perl5 "$root"/usr/lib/x86_64-linux-gnu/perl
# No documentation, locales or logs.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/usr/share/locale/* "$root"/usr/share/lintian "$root"/var/log/* "$root"/var/cache/ldconfig/*
# No setuid or setgid binaries.
find "$root" -xdev -type f -perm /6000 -exec chmod ug-s {} +
