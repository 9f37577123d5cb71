#!/bin/bash
# A real single-node Kubernetes cluster on this machine, offline, for the
# Kubernetes engine's tests and benchmarks (recipe: shared/k8s-lab.md).
#
#   scripts/k8s-cluster.sh up            start it (builds the binaries once: scripts/k8s-build.sh)
#   scripts/k8s-cluster.sh down [--purge] stop it and undo every host change; --purge drops its state
#   scripts/k8s-cluster.sh import REF... copy images from Docker into the node's containerd
#   scripts/k8s-cluster.sh kubeconfig    print the admin kubeconfig's path
#   scripts/k8s-cluster.sh status        exit 0 when the cluster answers
#
# Kubernetes v1.37.2 (built from the Go module proxy), Debian's etcd (extracted,
# no service), a containerd of its own (not Docker's), the bridge CNI plugin on
# k8slab0 (10.244.0.0/24), no registry. Host changes while up, all undone by
# down: the bridge, two iptables rules (pods may not open connections to the
# host), a shared bind mount of the kubelet dir, kubepods cgroups, netns files
# of pods, /var/lib/kubelet and /var/lib/cni if they did not exist. Host
# sysctls are never changed: the kubelet runs in a private mount namespace
# with files bound over the ones it would set.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${K8S_CACHE:-/var/cache/cronium/k8s}
VERSION=${K8S_VERSION:-1.37.2}
K8S_BIN=${K8S_BIN:-$CACHE/v$VERSION/bin}
LAB=${K8S_LAB:-$CACHE/lab}
NODE=k8s-lab-node
API=https://127.0.0.1:6443
CTR="ctr -a $LAB/run/containerd.sock -n k8s.io"

log() { echo "k8s-cluster: $*" >&2; }
die() { log "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (it starts containerd, the kubelet and a bridge)"

admin_token() { awk -F, '$2=="admin"{print $1}' "$LAB/pki/tokens.csv" 2>/dev/null; }
api() { curl -sf --max-time 5 --cacert "$LAB/pki/ca.crt" -H "Authorization: Bearer $(admin_token)" "$@"; }

# ---------------------------------------------------------------- packages
packages() {
  local need=()
  command -v containerd >/dev/null || need+=(containerd)
  command -v runc >/dev/null || need+=(runc)
  [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
  command -v openssl >/dev/null || need+=(openssl)
  command -v curl >/dev/null || need+=(curl)
  command -v unshare >/dev/null || need+=(util-linux)
  command -v iptables >/dev/null || need+=(iptables)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  # etcd and busybox are extracted from their packages: no service starts.
  if [ ! -x "$CACHE/opt/usr/bin/etcd" ] || [ ! -x "$CACHE/opt/bin/busybox" ]; then
    log "fetching etcd-server and busybox-static from the Debian mirror"
    local d; d=$(mktemp -d)
    (cd "$d" && apt-get download -qq etcd-server busybox-static >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get download -qq etcd-server busybox-static; })
    mkdir -p "$CACHE/opt"
    for f in "$d"/*.deb; do dpkg-deb -x "$f" "$CACHE/opt"; done
    rm -rf "$d"
  fi
}

# ---------------------------------------------------------------- images
# mkimage OUT.tar REPO:TAG ENTRYPOINT_JSON: a one-layer image of the static
# busybox (the pause image and a shell), made without a registry or Docker.
mkimage() {
  python3 - "$1" "$2" "$CACHE/opt/bin/busybox" "$3" <<'PY'
import hashlib, io, json, sys, tarfile
out, tag, busybox, entry = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
    for d in ("bin", "dev", "etc", "proc", "sys", "tmp"):
        ti = tarfile.TarInfo(d); ti.type = tarfile.DIRTYPE; ti.mode = 0o1777 if d == "tmp" else 0o755
        t.addfile(ti)
    data = open(busybox, "rb").read()
    ti = tarfile.TarInfo("bin/busybox"); ti.size = len(data); ti.mode = 0o755
    t.addfile(ti, io.BytesIO(data))
    for applet in ("sh", "sleep", "echo", "cat", "ls", "id", "true"):
        ti = tarfile.TarInfo("bin/" + applet); ti.type = tarfile.SYMTYPE; ti.linkname = "busybox"; ti.mode = 0o777
        t.addfile(ti)
lb = layer.getvalue()
diff_id = "sha256:" + hashlib.sha256(lb).hexdigest()
config = {"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
          "config": {"Env": ["PATH=/bin"], "Entrypoint": entry},
          "rootfs": {"type": "layers", "diff_ids": [diff_id]},
          "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "k8s-cluster.sh"}]}
cb = json.dumps(config, sort_keys=True).encode()
cname = hashlib.sha256(cb).hexdigest() + ".json"
lname = diff_id[7:] + "/layer.tar"
manifest = [{"Config": cname, "RepoTags": [tag], "Layers": [lname]}]
with tarfile.open(out, "w") as t:
    for name, b in ((lname, lb), (cname, cb), ("manifest.json", json.dumps(manifest).encode())):
        ti = tarfile.TarInfo(name); ti.size = len(b); ti.mode = 0o644
        t.addfile(ti, io.BytesIO(b))
PY
}

# import REF...: images from the local Docker into the node's containerd,
# skipping those it has.
import_images() {
  local have ref
  have=$($CTR images ls -q)
  for ref in "$@"; do
    local full=$ref
    case $ref in */*) ;; *) full=library/$ref ;; esac
    case $full in docker.io/*|localhost/*) ;; *) full=docker.io/$full ;; esac
    if grep -qx "$full" <<<"$have"; then continue; fi
    log "importing $ref"
    docker save "$ref" | $CTR images import - >/dev/null
  done
}

# ---------------------------------------------------------------- config
configure() {
  mkdir -p "$LAB"/{pki,kubeconfigs,containerd/root,containerd/state,containerd/opt,run,cni/net.d,cni/ipam,kubelet,pod-logs,logs,fake-sysctl,etcd-data,images}
  chmod 700 "$LAB" "$LAB/etcd-data" "$LAB/pki" "$LAB/kubeconfigs"
  local P=$LAB/pki
  if [ ! -f "$P/tokens.csv" ]; then
    log "making the cluster's keys"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$P/ca.key" -out "$P/ca.crt" -days 3650 -subj "/CN=cronium-k8s-lab-ca" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
      "subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.96.0.1" > "$P/apiserver.ext"
    openssl req -newkey rsa:2048 -nodes -keyout "$P/apiserver.key" -out "$P/apiserver.csr" -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in "$P/apiserver.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 3650 -extfile "$P/apiserver.ext" -out "$P/apiserver.crt" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=clientAuth" > "$P/client.ext"
    openssl req -newkey rsa:2048 -nodes -keyout "$P/kubelet-client.key" -out "$P/kubelet-client.csr" -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" 2>/dev/null
    openssl x509 -req -in "$P/kubelet-client.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 3650 -extfile "$P/client.ext" -out "$P/kubelet-client.crt" 2>/dev/null
    openssl genrsa -out "$P/sa.key" 2048 2>/dev/null
    openssl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null
    tok() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
    {
      echo "$(tok),admin,uid-admin,\"system:masters\""
      echo "$(tok),system:kube-controller-manager,uid-kcm"
      echo "$(tok),system:kube-scheduler,uid-sched"
      echo "$(tok),system:node:$NODE,uid-node,\"system:nodes\""
      # A user with no rights of its own: the engine's RBAC tests grant it some.
      echo "$(tok),cronium-limited,uid-limited"
    } > "$P/tokens.csv"
    chmod 600 "$P"/*.key "$P/tokens.csv"
  fi

  cat > "$LAB/containerd/config.toml" <<X
version = 2
root = "$LAB/containerd/root"
state = "$LAB/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$LAB/run/containerd.sock"
[ttrpc]
  address = "$LAB/run/containerd.sock.ttrpc"
[debug]
  level = "info"
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$LAB/containerd/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "docker.io/local/pause:lab"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    disable_apparmor = true
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          BinaryName = "$(command -v runc)"
          Root = "$LAB/run/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$LAB/cni/net.d"
      max_conf_num = 1
X
  cat > "$LAB/cni/net.d/10-k8slab.conflist" <<X
{"cniVersion": "0.4.0", "name": "k8slab", "plugins": [{"type": "bridge", "bridge": "k8slab0", "isGateway": true,
 "ipMasq": false, "hairpinMode": true, "ipam": {"type": "host-local", "dataDir": "$LAB/cni/ipam",
 "ranges": [[{"subnet": "10.244.0.0/24", "gateway": "10.244.0.1"}]], "routes": [{"dst": "10.244.0.0/16"}]}}]}
X
  mk_kubeconfig() { # name user
    local tok; tok=$(awk -F, -v u="$2" '$2==u{print $1}' "$LAB/pki/tokens.csv")
    cat > "$LAB/kubeconfigs/$1.kubeconfig" <<X
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: $API
    certificate-authority: $LAB/pki/ca.crt
users:
- name: $2
  user:
    token: $tok
contexts:
- name: lab
  context: {cluster: lab, user: "$2"}
current-context: lab
X
    chmod 600 "$LAB/kubeconfigs/$1.kubeconfig"
  }
  mk_kubeconfig admin admin
  mk_kubeconfig controller-manager system:kube-controller-manager
  mk_kubeconfig scheduler system:kube-scheduler
  mk_kubeconfig kubelet "system:node:$NODE"
  mk_kubeconfig limited cronium-limited

  cat > "$LAB/kubelet/config.yaml" <<X
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 10.244.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
containerRuntimeEndpoint: unix://$LAB/run/containerd.sock
imageServiceEndpoint: unix://$LAB/run/containerd.sock
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
podLogsDir: $LAB/pod-logs
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $LAB/pki/ca.crt}
authorization:
  mode: Webhook
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
registerNode: true
serializeImagePulls: false
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 110
podPidsLimit: 4096
syncFrequency: 10s
nodeStatusUpdateFrequency: 10s
nodeStatusMaxImages: -1
makeIPTablesUtilChains: false
X
  echo 1 > "$LAB/fake-sysctl/vm.overcommit_memory"
  echo 0 > "$LAB/fake-sysctl/vm.panic_on_oom"
  echo 10 > "$LAB/fake-sysctl/kernel.panic"
  echo 1 > "$LAB/fake-sysctl/kernel.panic_on_oops"
  echo 1000000 > "$LAB/fake-sysctl/kernel.keys.root_maxkeys"
  echo 25000000 > "$LAB/fake-sysctl/kernel.keys.root_maxbytes"
  cat > "$LAB/kubelet-ns.sh" <<X
#!/bin/bash
# Inside the kubelet's private mount namespace: files over the sysctls it would set.
set -e
for f in $LAB/fake-sysctl/*; do mount --bind "\$f" "/proc/sys/\$(basename "\$f" | tr . /)"; done
exec $K8S_BIN/kubelet --config=$LAB/kubelet/config.yaml --kubeconfig=$LAB/kubeconfigs/kubelet.kubeconfig \\
  --root-dir=$LAB/kubelet --cert-dir=$LAB/kubelet/pki --hostname-override=$NODE --node-ip=10.244.0.1 --v=1
X
  chmod 755 "$LAB/kubelet-ns.sh"
}

# bg NAME CMD...: start a daemon in its own session; pid in run/NAME.pid.
bg() {
  local name=$1; shift
  setsid "$@" > "$LAB/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$LAB/run/$name.pid"
}
running() { [ -f "$LAB/run/$1.pid" ] && kill -0 "$(cat "$LAB/run/$1.pid")" 2>/dev/null; }
waitfor() { # what seconds cmd...
  local what=$1 end=$(( $(date +%s) + $2 )); shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge $end ]; then
      log "timed out waiting for $what; last log lines:"
      tail -n 15 "$LAB"/logs/*.log >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  log "$what ($(( $(date +%s) - T0 )) s)"
}

node_ready() {
  api "$API/api/v1/nodes/$NODE" | python3 -c 'import json,sys; n=json.load(sys.stdin)
sys.exit(0 if any(c["type"]=="Ready" and c["status"]=="True" and c["lastHeartbeatTime"]>=sys.argv[1] for c in n["status"]["conditions"]) else 1)' "$1"
}

up() {
  T0=$(date +%s)
  if [ -f "$LAB/run/up" ] && running kube-apiserver && running kubelet && api "$API/readyz" >/dev/null; then
    log "already up ($API, kubeconfig $LAB/kubeconfigs/admin.kubeconfig)"; return 0
  fi
  packages
  "$ROOT/scripts/k8s-build.sh"
  configure
  [ -f "$LAB/run/preexisting" ] || for p in /var/lib/kubelet /var/lib/cni /run/containerd/runc /run/containerd/fifo; do
    [ -e $p ] && echo $p || true; done > "$LAB/run/preexisting"

  if ! ip link show k8slab0 >/dev/null 2>&1; then
    ip link add k8slab0 type bridge && ip addr add 10.244.0.1/24 dev k8slab0 && ip link set k8slab0 up
  fi
  # Pods may reach each other on the bridge (Docker's FORWARD policy is
  # DROP). Appended: Docker's DOCKER-USER jump stays first, which cronium's
  # network guard checks.
  iptables -C FORWARD -i k8slab0 -o k8slab0 -m comment --comment k8s-lab -j ACCEPT 2>/dev/null ||
    iptables -A FORWARD -i k8slab0 -o k8slab0 -m comment --comment k8s-lab -j ACCEPT
  iptables -C INPUT -i k8slab0 -m conntrack --ctstate NEW -m comment --comment k8s-lab -j DROP 2>/dev/null ||
    iptables -I INPUT 1 -i k8slab0 -m conntrack --ctstate NEW -m comment --comment k8s-lab -j DROP

  running containerd || bg containerd containerd --config "$LAB/containerd/config.toml"
  waitfor "containerd" 30 $CTR version
  [ -f "$LAB/images/pause.tar" ] || mkimage "$LAB/images/pause.tar" local/pause:lab '["/bin/busybox","sleep","2147483647"]'
  [ -f "$LAB/images/busybox.tar" ] || mkimage "$LAB/images/busybox.tar" local/busybox:lab '["/bin/sh"]'
  local have; have=$($CTR images ls -q)
  for tb in pause busybox; do
    grep -qx "docker.io/local/$tb:lab" <<<"$have" || $CTR images import "$LAB/images/$tb.tar" >/dev/null
  done

  running etcd || bg etcd "$CACHE/opt/usr/bin/etcd" --name lab --data-dir "$LAB/etcd-data" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster lab=http://127.0.0.1:2380 --listen-metrics-urls '' --log-level warn --logger zap
  waitfor "etcd" 30 curl -sf http://127.0.0.1:2379/health
  local P=$LAB/pki
  running kube-apiserver || bg kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=6443 \
    --endpoint-reconciler-type=none --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
    --client-ca-file="$P/ca.crt" --token-auth-file="$P/tokens.csv" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --kubelet-client-certificate="$P/kubelet-client.crt" --kubelet-client-key="$P/kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP --profiling=false
  waitfor "kube-apiserver" 120 api "$API/readyz"
  running kube-controller-manager || bg kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$LAB/kubeconfigs/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$LAB/kubeconfigs/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$LAB/kubeconfigs/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" --cluster-name=cronium-lab --profiling=false
  running kube-scheduler || bg kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig="$LAB/kubeconfigs/scheduler.kubeconfig" \
    --authentication-kubeconfig="$LAB/kubeconfigs/scheduler.kubeconfig" \
    --authorization-kubeconfig="$LAB/kubeconfigs/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --profiling=false
  # The kubelet's root dir is a shared bind mount, so the volumes it mounts
  # in its private namespace reach containerd.
  grep -q " $LAB/kubelet " /proc/mounts || { mount --bind "$LAB/kubelet" "$LAB/kubelet" && mount --make-rshared "$LAB/kubelet"; }
  local since; since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  running kubelet || bg kubelet unshare -m --propagation unchanged "$LAB/kubelet-ns.sh"
  waitfor "node $NODE Ready" 120 node_ready "$since"
  waitfor "service account default/default" 60 api "$API/api/v1/namespaces/default/serviceaccounts/default"
  touch "$LAB/run/up"
  log "up in $(( $(date +%s) - T0 )) s: kubeconfig $LAB/kubeconfigs/admin.kubeconfig"
}

stop() { # name
  local f=$LAB/run/$1.pid p
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p"
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$p" 2>/dev/null && { log "$1 ignored SIGTERM: SIGKILL"; kill -9 "$p"; }
  fi
  rm -f "$f"
}

down() {
  set +e
  rm -f "$LAB/run/up"
  tasks() { $CTR tasks ls -q 2>/dev/null; }
  # Workloads first, while the kubelet lives: CNI DEL, unmounts, cgroups.
  if [ -f "$LAB/pki/tokens.csv" ] && api "$API/readyz" >/dev/null 2>&1; then
    for ns in $(api "$API/api/v1/namespaces" | python3 -c 'import json,sys;[print(i["metadata"]["name"]) for i in json.load(sys.stdin)["items"]]'); do
      api -X DELETE -H 'Content-Type: application/json' -d '{"gracePeriodSeconds":0}' "$API/api/v1/namespaces/$ns/pods" >/dev/null
    done
    for _ in $(seq 1 150); do [ -z "$(tasks)" ] && break; sleep 0.2; done
  fi
  stop kubelet; stop kube-scheduler; stop kube-controller-manager; stop kube-apiserver; stop etcd
  for t in $(tasks); do $CTR tasks kill -s SIGKILL "$t"; sleep 0.5; $CTR tasks delete "$t" >/dev/null 2>&1; done
  for c in $($CTR containers ls -q 2>/dev/null); do $CTR containers delete "$c" >/dev/null 2>&1; done
  stop containerd
  rm -f "$LAB/run/containerd.sock" "$LAB/run/containerd.sock.ttrpc"
  for d in /proc/[0-9]*; do # shims of this containerd (our socket in their argv)
    if tr '\0' ' ' < "$d/cmdline" 2>/dev/null | grep -q -- "-address $LAB/run/containerd.sock"; then kill "${d#/proc/}"; fi
  done
  grep -o " $LAB/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  ip link del k8slab0 2>/dev/null
  while iptables -D FORWARD -i k8slab0 -o k8slab0 -m comment --comment k8s-lab -j ACCEPT 2>/dev/null; do :; done
  while iptables -D INPUT -i k8slab0 -m conntrack --ctstate NEW -m comment --comment k8s-lab -j DROP 2>/dev/null; do :; done
  for ns in $(ls /run/netns 2>/dev/null | grep '^cni-'); do
    grep -aqs "$ns" "$LAB/containerd/root/io.containerd.metadata.v1.bolt/meta.db" && ip netns delete "$ns"
  done
  for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/unified/; do
    [ -d "$h/kubepods" ] && find "$h/kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  for p in /var/lib/kubelet /var/lib/cni /run/containerd/runc /run/containerd/fifo; do
    grep -qx "$p" "$LAB/run/preexisting" 2>/dev/null || rm -rf "$p"
  done
  if [ "${1:-}" = --purge ]; then
    rm -rf "$LAB"
    log "down; state purged"
  else
    log "down (state kept in $LAB: the next up is warm)"
  fi
  set -e
}

case ${1:-} in
  up) up ;;
  down) shift; down "${1:-}" ;;
  import) shift; import_images "$@" ;;
  kubeconfig) echo "$LAB/kubeconfigs/admin.kubeconfig" ;;
  status) api "$API/readyz" >/dev/null ;;
  *) echo "usage: $0 up | down [--purge] | import REF... | kubeconfig | status" >&2; exit 2 ;;
esac
