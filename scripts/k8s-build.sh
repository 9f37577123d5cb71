#!/bin/bash
# Builds the Kubernetes binaries the Kubernetes engine's tests run on (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet) from the Go module proxy, once, into a cache
# outside the clone: $K8S_CACHE/v$VERSION/bin (default /var/cache/cronium/k8s). A second run with the
# binaries present does nothing. About 14 minutes on 2 cores when the cache is empty.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces its staging modules with ./staging
# paths. A wrapper module requires it and replaces every staging module with its published v0.X.Y.
set -euo pipefail
VERSION=${K8S_VERSION:-1.37.2}
CACHE=${K8S_CACHE:-/var/cache/cronium/k8s}
OUT=$CACHE/v$VERSION/bin
BINS="kube-apiserver kube-controller-manager kube-scheduler kubelet"

have=1
for b in $BINS; do [ -x "$OUT/$b" ] || have=0; done
if [ $have = 1 ]; then echo "k8s-build: v$VERSION binaries cached in $OUT"; exit 0; fi

minor=${VERSION#*.}; minor=${minor%%.*}
staging=0.$minor.${VERSION##*.}
W=$CACHE/v$VERSION/wrapper
rm -rf "$W"; mkdir -p "$W" "$OUT"
cd "$W"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
gomod=$(go mod download -json "k8s.io/kubernetes@v$VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
{
  echo "module cronium.local/k8sbuild"
  echo
  echo "go $(go env GOVERSION | sed 's/^go//')"
  echo
  echo "require k8s.io/kubernetes v$VERSION"
  echo
  # every staging module k8s.io/kubernetes replaces with ./staging/...
  grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk -v v="$staging" '{print "replace " $1 " => " $1 " v" v}'
} > go.mod
cat > tools.go <<X
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
X
echo "k8s-build: resolving modules for v$VERSION ($(grep -c '^replace' go.mod) staging modules at v$staging)"
go mod tidy -e >/dev/null 2>mod.log || { cat mod.log; exit 1; }
ld="-s -w -X k8s.io/component-base/version.gitVersion=v$VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=v$VERSION"
start=$(date +%s)
for b in $BINS; do
  echo "k8s-build: building $b"
  go build -tags tools -trimpath -ldflags "$ld" -o "$OUT/$b.tmp" "k8s.io/kubernetes/cmd/$b"
  mv "$OUT/$b.tmp" "$OUT/$b"
done
echo "k8s-build: v$VERSION built in $(( $(date +%s) - start )) s into $OUT"
