#!/usr/bin/env bash
# Builds (once per machine, cached by version) every binary the local control plane runs:
#   kube-apiserver, kube-controller-manager, kube-scheduler  from k8s.io/kubernetes (wrapper module)
#   etcd                                                     from go.etcd.io/etcd/server/v3, same module
#   kwok                                                     from sigs.k8s.io/kwok
# and installs Prometheus from Debian. Prints where the binaries are on success.
#
# Why a wrapper module: k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them
# with local paths, so `go install k8s.io/kubernetes/cmd/...@vX` is refused. A module of our own
# that requires k8s.io/kubernetes and replaces each staging module with its published v0.N.M tag
# builds the same code.
#
# Why etcd from Go and not Debian's etcd-server 3.4.23: with 3.4.23 the API server turns off its
# RequestWatchProgress storage feature, and then refuses the watch-list streams that client-go
# 0.33+ informers open first. kwok's informers then fall back to polling with a growing back-off,
# its Node heartbeats arrive late, and the node controller marks every Node NotReady and every Pod
# unready within a minute (seen here). etcd 3.6.4 is the version Kubernetes 1.34 requires anyway,
# and since k8s.io/kubernetes already depends on go.etcd.io/etcd/server/v3, building it from the
# same wrapper module shares the compiled dependencies: about ten extra seconds.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${CANARY_E2E_CACHE:-$HOME/.cache/canary-e2e}"
kube_bin="$cache/kubernetes-$KUBERNETES_VERSION"
kwok_bin="$cache/kwok-$KWOK_VERSION"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

step() { printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() {
  printf '\nerror: e2e/cluster/build.sh failed at step "%s"\n  command: %s\n  %s\n' "$1" "$2" "$3" >&2
  exit 1
}
run() { # run STEP-NAME HINT COMMAND...: runs the command, and on failure names the step and command
  local name="$1" hint="$2"
  shift 2
  "$@" || fail "$name" "$*" "$hint"
}

need_go() {
  [ -x "$GO" ] || fail "find the Go toolchain" "command -v go" \
    "no Go toolchain on PATH or at /usr/local/go/bin/go; install Go 1.24+ (or set GO=/path/to/go)"
  # The proxy must answer before a long build starts, so a missing network fails in a second.
  local proxy
  proxy="$("$GO" env GOPROXY | cut -d, -f1)"
  if [ "$proxy" != "off" ] && [ "$proxy" != "direct" ]; then
    run "reach the Go module proxy" "check GOPROXY ($proxy) and the network" \
      curl -fsS -o /dev/null --max-time 20 "$proxy/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.info"
  fi
}

build_kubernetes() {
  if [ -x "$kube_bin/kube-apiserver" ] && [ -x "$kube_bin/kube-controller-manager" ] && [ -x "$kube_bin/kube-scheduler" ] && [ -x "$kube_bin/etcd" ]; then
    step "kubernetes $KUBERNETES_VERSION: cached in $kube_bin"
    return
  fi
  need_go
  step "kubernetes $KUBERNETES_VERSION: building kube-apiserver, kube-controller-manager, kube-scheduler, etcd (first time only; about 10 minutes on 2 cores)"
  local work="$cache/src/kubernetes-$KUBERNETES_VERSION"
  rm -rf "$work" && mkdir -p "$work"
  local staging_version="v0.${KUBERNETES_VERSION#v1.}"
  (
    cd "$work"
    run "create the wrapper module" "" "$GO" mod init canary.dev/e2e/kubernetes
    step "downloading k8s.io/kubernetes@$KUBERNETES_VERSION from the module proxy"
    run "download k8s.io/kubernetes" "is the Go module proxy reachable?" \
      "$GO" mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" > kubernetes.json
    local upstream_mod
    upstream_mod="$(python3 -c 'import json,sys; print(json.load(open("kubernetes.json"))["GoMod"])')"
    # The staging modules are exactly the local-path replaces of the upstream go.mod.
    local staging
    staging="$(awk '/=> \.\/staging\/src\// {print $1}' "$upstream_mod" | sort -u)"
    [ -n "$staging" ] || fail "read the staging modules" "awk ... $upstream_mod" "the upstream go.mod has no ./staging replaces"
    local args=()
    for m in $staging; do args+=("-replace=$m=$m@$staging_version"); done
    run "write the replace directives" "" "$GO" mod edit "${args[@]}" "-require=k8s.io/kubernetes@$KUBERNETES_VERSION"
    cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "go.etcd.io/etcd/server/v3"
)
GO
    step "resolving the module graph (go mod tidy)"
    run "resolve the module graph" "is the Go module proxy reachable?" env GOFLAGS=-mod=mod "$GO" mod tidy -e
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)"
    ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
    step "compiling about 2,500 packages; a line every 250"
    mkdir -p "$kube_bin.tmp"
    local status
    set +e
    env CGO_ENABLED=0 "$GO" build -v -trimpath -ldflags "$ldflags" -o "$kube_bin.tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler go.etcd.io/etcd/server/v3 2>&1 | tee build.log |
      awk '/^[a-z0-9.-]+(\/[^ ]*)?$/ { n++; if (n % 250 == 0) { printf "    %d packages compiled\n", n; fflush() } }' >&2
    status=${PIPESTATUS[0]}
    set -e
    if [ "$status" -ne 0 ]; then
      tail -30 build.log >&2
      fail "compile the Kubernetes binaries" "go build k8s.io/kubernetes/cmd/... go.etcd.io/etcd/server/v3" \
        "the compiler's last lines are above; the whole log is $work/build.log"
    fi
    # go names the etcd binary after its import path (server, or v3 in older toolchains).
    if [ -e "$kube_bin.tmp/server" ]; then mv "$kube_bin.tmp/server" "$kube_bin.tmp/etcd"; fi
    if [ -e "$kube_bin.tmp/v3" ]; then mv "$kube_bin.tmp/v3" "$kube_bin.tmp/etcd"; fi
  )
  rm -rf "$kube_bin" && mv "$kube_bin.tmp" "$kube_bin"
  step "kubernetes $KUBERNETES_VERSION: built into $kube_bin"
}

build_kwok() {
  if [ -x "$kwok_bin/kwok" ]; then
    step "kwok $KWOK_VERSION: cached in $kwok_bin"
    return
  fi
  need_go
  step "kwok $KWOK_VERSION: go install sigs.k8s.io/kwok/cmd/kwok (first time only; a few minutes)"
  mkdir -p "$kwok_bin.tmp"
  run "build kwok" "is the Go module proxy reachable?" \
    env CGO_ENABLED=0 GOBIN="$kwok_bin.tmp" "$GO" install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  rm -rf "$kwok_bin" && mv "$kwok_bin.tmp" "$kwok_bin"
}

install_debian() {
  local missing=()
  command -v prometheus > /dev/null || [ -x /usr/bin/prometheus ] || missing+=(prometheus)
  command -v ip > /dev/null || missing+=(iproute2)
  command -v openssl > /dev/null || missing+=(openssl)
  if [ ${#missing[@]} -eq 0 ]; then
    step "Debian packages: present"
    return
  fi
  step "Debian packages: installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  # The packages' own post-install scripts try to start services; there is no init system here
  # and we start the binaries ourselves, so tell invoke-rc.d not to.
  printf '#!/bin/sh\nexit 101\n' > /tmp/canary-policy-rc.d && chmod +x /tmp/canary-policy-rc.d
  if [ ! -e /usr/sbin/policy-rc.d ]; then "${sudo[@]}" cp /tmp/canary-policy-rc.d /usr/sbin/policy-rc.d; fi
  run "apt-get update" "is the Debian mirror reachable?" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  run "apt-get install ${missing[*]}" "is the Debian mirror reachable?" \
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

started=$(date +%s)
install_debian
# --data-plane-only: for a run against an existing cluster (E2E_KUBECONFIG), which needs
# Prometheus here but no control plane of ours.
if [ "${1:-}" != "--data-plane-only" ]; then
  build_kubernetes
  build_kwok
fi
step "all binaries ready in $(( $(date +%s) - started ))s"
echo "$cache"
