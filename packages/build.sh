#!/bin/bash
# Cronium's package build, run as nobody in the builder image, in a sandbox
# whose network reaches only the package indexes. It resolves and downloads
# the declared packages into /out (the layer) and never runs a
# package's code: no maintainer scripts, wheels only, npm --ignore-scripts.
# Arguments come from the environment: see packages.Builder.
set -uo pipefail
out=/out
mkdir -p "$out" /tmp/home
export HOME=/tmp/home
fail() { echo "::cronium-fail::$1"; exit 1; }
# The operator's extra certificate authorities (a TLS-inspecting proxy in
# front of the indexes), trusted beside Debian's.
ca=/etc/ssl/certs/ca-certificates.crt
if [ -n "${CR_CA:-}" ]; then
  cat /etc/ssl/certs/ca-certificates.crt > /tmp/ca.pem
  printf '%s\n' "$CR_CA" >> /tmp/ca.pem
  ca=/tmp/ca.pem
fi

if [ -n "${CR_APT:-}" ]; then
  A=/tmp/apt
  mkdir -p $A/lists/partial $A/cache/archives/partial $A/etc/apt.conf.d $A/etc/preferences.d
  printf '%s\n' "$CR_APT_SOURCES" > $A/etc/sources.list
  # What the runtime image already has: its own dpkg database (written next
  # to this script by the engine), so that only what is missing is downloaded.
  cp /workspace/base-dpkg-status $A/status
  o=(-o "Dir::Etc=$A/etc" -o "Dir::Etc::SourceList=$A/etc/sources.list" -o "Dir::Etc::SourceParts=-"
     -o "Dir::State::Lists=$A/lists" -o "Dir::State::status=$A/status" -o "Dir::Cache=$A/cache"
     -o "Debug::NoLocking=1" -o "APT::Sandbox::User=" -o "Dir::Etc::TrustedParts=/etc/apt/trusted.gpg.d" -o "Dir::Log=/tmp" -o "Acquire::https::CaInfo=$ca"
     -o "APT::Cmd::Pattern-Only=true" -o "Acquire::http::Timeout=30" -o "Acquire::https::Timeout=30" -o "Acquire::Retries=1")
  echo "apt: reading the package indexes"
  apt-get "${o[@]}" -q --error-on=any update 2>&1 | grep -v '^Get:\|^Hit:' ; [ "${PIPESTATUS[0]}" = 0 ] || fail apt
  echo "apt: resolving $CR_APT"
  # shellcheck disable=SC2086
  apt-get "${o[@]}" -q -y --no-install-recommends install --download-only $CR_APT 2>&1 | grep -v '^Get:' ; [ "${PIPESTATUS[0]}" = 0 ] || fail apt
  for d in $A/cache/archives/*.deb; do
    [ -e "$d" ] || continue
    dpkg-deb -x "$d" "$out" || fail apt
    echo "::cronium-lock::apt $(dpkg-deb -f "$d" Package)=$(dpkg-deb -f "$d" Version)"
  done
fi

if [ -n "${CR_PYTHON:-}" ]; then
  target=$out/usr/local/lib/python3.11/dist-packages
  mkdir -p "$target"
  printf '%s\n' "$CR_PYTHON" > /tmp/requirements.txt # one requirement per line
  echo "python: resolving $(tr '\n' ' ' < /tmp/requirements.txt)"
  # pip reports an index that is down as "no matching distribution": ask it first.
  CA="$ca" python3 - "$CR_PIP_URL" "$(head -1 /tmp/requirements.txt)" <<'PY' || fail python
import re, ssl, sys, urllib.request, urllib.error, os
url, req = sys.argv[1].rstrip("/"), sys.argv[2]
name = re.match(r"[A-Za-z0-9._-]+", req).group(0)
try:
    urllib.request.urlopen(url + "/" + name + "/", timeout=20, context=ssl.create_default_context(cafile=os.environ["CA"]))
except urllib.error.HTTPError as e:
    if e.code >= 500 or e.code in (401, 403):
        sys.exit("ERROR: the package index %s answered %d %s" % (url, e.code, e.reason))
except Exception as e:
    sys.exit("ERROR: the package index %s cannot be reached: %s" % (url, e))
PY
  # shellcheck disable=SC2086
  pip3 install --no-cache-dir --disable-pip-version-check --no-input --break-system-packages \
    --only-binary=:all: --no-compile --cert "$ca" --timeout 30 --retries 1 --target "$target" --report /tmp/pip-report.json \
    $CR_PIP_INDEX -r /tmp/requirements.txt 2>&1 || fail python
  python3 - <<'PY' || fail python
import json
for i in json.load(open("/tmp/pip-report.json"))["install"]:
    m = i["metadata"]
    print("::cronium-lock::python %s==%s" % (m["name"], m["version"]))
PY
  rm -rf "$target"/bin
fi

if [ -n "${CR_NODE:-}" ]; then
  prefix=/tmp/node
  mkdir -p $prefix
  echo '{"name":"cronium-layer","private":true}' > $prefix/package.json
  mapfile -t node_pkgs <<< "$CR_NODE" # one package per line
  echo "node: resolving ${node_pkgs[*]}"
  (cd $prefix && npm install --ignore-scripts --no-audit --no-fund --no-update-notifier --omit=dev \
     --cache /tmp/npm-cache --cafile "$ca" --fetch-timeout=60000 --fetch-retries=1 --registry "$CR_NPM_REGISTRY" -- "${node_pkgs[@]}" 2>&1) || fail node
  node -e '
    const l = require("/tmp/node/package-lock.json");
    for (const [p, v] of Object.entries(l.packages || {})) if (p) console.log("::cronium-lock::node " + p.replace(/^.*node_modules\//, "") + "@" + v.version);
  ' || fail node
  # Where Debian's node looks for global modules (require.resolve.paths);
  # apt's node-* packages may have made the folder already.
  mkdir -p $out/usr/share/nodejs
  cp -a $prefix/node_modules/. $out/usr/share/nodejs/
fi
echo "::cronium-done::"
