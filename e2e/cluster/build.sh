#!/usr/bin/env bash
# Builds (once per machine, cached by version) every binary the local control plane runs:
#   kube-apiserver, kube-controller-manager, kube-scheduler  from k8s.io/kubernetes (wrapper module)
#   kubectl                                                  same module, its own cached step
#   etcd                                                     from go.etcd.io/etcd/server/v3, same module
#   kwok (+ its fast Pod ready/complete stages)              from sigs.k8s.io/kwok
#   traefik (+ the Gateway API standard CRDs and Traefik's)  from github.com/traefik/traefik/v3 (wrapper module)
#   helm                                                     from helm.sh/helm/v4 (a plain go install)
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
traefik_bin="$cache/traefik-$TRAEFIK_VERSION"
helm_bin="$cache/helm-$HELM_VERSION"
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

# The wrapper module every Kubernetes binary is compiled from. Created once; a later step that
# needs one more command (kubectl was added after the first four) only rewrites tools.go and
# re-resolves the graph, so the modules and compiled packages already cached are reused.
wrapper_module() {
  local work="$1"
  local staging_version="v0.${KUBERNETES_VERSION#v1.}"
  if [ ! -f "$work/go.mod" ]; then
    rm -rf "$work" && mkdir -p "$work"
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
    )
  fi
  cat > "$work/tools.go.new" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "go.etcd.io/etcd/server/v3"
)
GO
  if cmp -s "$work/tools.go.new" "$work/tools.go"; then
    rm -f "$work/tools.go.new"
    return
  fi
  mv "$work/tools.go.new" "$work/tools.go"
  step "resolving the module graph (go mod tidy)"
  (cd "$work" && run "resolve the module graph" "is the Go module proxy reachable?" env GOFLAGS=-mod=mod "$GO" mod tidy -e)
}

# The Kubernetes binaries report their version from these link-time variables.
kubernetes_ldflags() {
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  echo "$ldflags"
}

# compile WORK OUT-DIR STEP-NAME LDFLAGS PACKAGE...: go build into OUT-DIR with LDFLAGS, a
# progress line every 250 packages, and the compiler's last lines on failure.
compile() {
  local work="$1" out="$2" name="$3" ldflags="$4"
  shift 4
  mkdir -p "$out"
  local status
  set +e
  (cd "$work" && env CGO_ENABLED=0 "$GO" build -v -trimpath -ldflags "$ldflags" -o "$out/" "$@") 2>&1 |
    tee "$work/build.log" |
    awk '/^[a-z0-9.-]+(\/[^ ]*)?$/ { n++; if (n % 250 == 0) { printf "    %d packages compiled\n", n; fflush() } }' >&2
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -ne 0 ]; then
    tail -30 "$work/build.log" >&2
    fail "$name" "go build $*" "the compiler's last lines are above; the whole log is $work/build.log"
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
  # A first build starts from a fresh module, so a half-made one from a killed run cannot stay.
  rm -rf "$work"
  wrapper_module "$work"
  step "compiling about 2,500 packages; a line every 250"
  rm -rf "$kube_bin.tmp"
  compile "$work" "$kube_bin.tmp" "compile the Kubernetes binaries" "$(kubernetes_ldflags)" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler go.etcd.io/etcd/server/v3
  # go names the etcd binary after its import path (server, or v3 in older toolchains).
  if [ -e "$kube_bin.tmp/server" ]; then mv "$kube_bin.tmp/server" "$kube_bin.tmp/etcd"; fi
  if [ -e "$kube_bin.tmp/v3" ]; then mv "$kube_bin.tmp/v3" "$kube_bin.tmp/etcd"; fi
  # Keep a kubectl already built for this version: it is its own cached step (build_kubectl).
  if [ -x "$kube_bin/kubectl" ]; then mv "$kube_bin/kubectl" "$kube_bin.tmp/kubectl"; fi
  rm -rf "$kube_bin" && mv "$kube_bin.tmp" "$kube_bin"
  step "kubernetes $KUBERNETES_VERSION: built into $kube_bin"
}

# kubectl is a step of its own so that a machine that already has the four server binaries builds
# only kubectl: same wrapper module and go build cache, so only kubectl's own packages compile.
# The e2e suite runs it to prove the commands the README and docs/operations.md print.
build_kubectl() {
  if [ -x "$kube_bin/kubectl" ]; then
    step "kubectl $KUBERNETES_VERSION: cached in $kube_bin"
    return
  fi
  need_go
  step "kubectl $KUBERNETES_VERSION: building from the same wrapper module (first time only; a few minutes)"
  local work="$cache/src/kubernetes-$KUBERNETES_VERSION"
  wrapper_module "$work"
  step "compiling kubectl's packages (those the server binaries share are cached); a line every 250"
  rm -rf "$kube_bin/kubectl.tmp"
  compile "$work" "$kube_bin/kubectl.tmp" "compile kubectl" "$(kubernetes_ldflags)" k8s.io/kubernetes/cmd/kubectl
  mv "$kube_bin/kubectl.tmp/kubectl" "$kube_bin/kubectl"
  rm -rf "$kube_bin/kubectl.tmp"
  step "kubectl $KUBERNETES_VERSION: built into $kube_bin"
}

# kwok, with two of its own "fast" Pod stages beside it:
#   $kwok_bin/kwok
#   $kwok_bin/stages/pod-ready.yaml, pod-complete.yaml   exactly as the kwok module ships them
# The control plane configures a Pod delete stage of its own, and kwok then loads none of its
# default Pod stages: these two are the defaults it would have loaded (kustomize/stage/pod/fast).
kwok_stages() {
  local json dir
  json="$("$GO" mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION")" ||
    fail "download sigs.k8s.io/kwok" "go mod download -json sigs.k8s.io/kwok@$KWOK_VERSION" "is the Go module proxy reachable?"
  dir="$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  # Into place in one rename, so a control plane starting meanwhile never reads half a file.
  rm -rf "$1/stages.tmp" && mkdir -p "$1/stages.tmp"
  cp "$dir/kustomize/stage/pod/fast/pod-ready.yaml" "$dir/kustomize/stage/pod/fast/pod-complete.yaml" "$1/stages.tmp/"
  # The module cache is read-only; the copies need not be.
  chmod u+w "$1"/stages.tmp/*.yaml
  rm -rf "$1/stages" && mv "$1/stages.tmp" "$1/stages"
}

build_kwok() {
  if [ -x "$kwok_bin/kwok" ] && [ -f "$kwok_bin/stages/pod-ready.yaml" ] && [ -f "$kwok_bin/stages/pod-complete.yaml" ]; then
    step "kwok $KWOK_VERSION: cached in $kwok_bin"
    return
  fi
  need_go
  if [ -x "$kwok_bin/kwok" ]; then
    # A cache from before the stages were copied: the module is all that is missing.
    step "kwok $KWOK_VERSION: copying its fast Pod stages from the module"
    kwok_stages "$kwok_bin"
    return
  fi
  step "kwok $KWOK_VERSION: go install sigs.k8s.io/kwok/cmd/kwok (first time only; a few minutes)"
  rm -rf "$kwok_bin.tmp" && mkdir -p "$kwok_bin.tmp"
  run "build kwok" "is the Go module proxy reachable?" \
    env CGO_ENABLED=0 GOBIN="$kwok_bin.tmp" "$GO" install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  kwok_stages "$kwok_bin.tmp"
  rm -rf "$kwok_bin" && mv "$kwok_bin.tmp" "$kwok_bin"
}

# Traefik, the real gateway of the Gateway API scenarios, with the CRDs it serves beside it:
#   $traefik_bin/traefik
#   $traefik_bin/crds/gateway-api/*.yaml   the Gateway API standard channel, exactly as that module ships it
#   $traefik_bin/crds/traefik.yaml         Traefik's own CRDs (IngressRoute, TraefikService, ...)
# Why a wrapper module: `go install github.com/traefik/traefik/v3/cmd/traefik@v3.6.12` is refused
# because Traefik's go.mod has `replace` directives (forks of three libraries). A module of our own
# that requires Traefik and copies those replaces builds the same code. v3.7.x does not build
# from the proxy at all (its nested module github.com/traefik/traefik/dynamic/ext is not served).
build_traefik() {
  if [ -x "$traefik_bin/traefik" ] && [ -f "$traefik_bin/crds/traefik.yaml" ] && [ -f "$traefik_bin/crds/gateway-api/gateway.networking.k8s.io_httproutes.yaml" ]; then
    step "traefik $TRAEFIK_VERSION: cached in $traefik_bin"
    return
  fi
  need_go
  step "traefik $TRAEFIK_VERSION: building from a wrapper module (first time only; about 6 minutes on 2 cores, 15 s when the Go build cache is warm)"
  local work="$cache/src/traefik-$TRAEFIK_VERSION"
  rm -rf "$work" "$traefik_bin.tmp" && mkdir -p "$work" "$traefik_bin.tmp/crds/gateway-api"
  (
    cd "$work"
    run "create the Traefik wrapper module" "" "$GO" mod init canary.dev/e2e/traefik
    step "downloading github.com/traefik/traefik/v3@$TRAEFIK_VERSION from the module proxy"
    run "download traefik" "is the Go module proxy reachable?" \
      "$GO" mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" > traefik.json
    local upstream_mod upstream_dir
    upstream_mod="$(python3 -c 'import json; print(json.load(open("traefik.json"))["GoMod"])')"
    upstream_dir="$(python3 -c 'import json; print(json.load(open("traefik.json"))["Dir"])')"
    # Traefik's replaces, read from its go.mod as `go mod edit` prints them, so a new version's
    # set is taken as it is.
    local args=()
    while IFS= read -r line; do args+=("$line"); done < <(
      "$GO" mod edit -json "$upstream_mod" |
        python3 -c 'import json,sys
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    lhs = old["Path"] + ("@" + old["Version"] if old.get("Version") else "")
    if not new.get("Version"):
        sys.exit("local-path replace " + lhs + " => " + new["Path"] + " cannot be copied")
    print("-replace=" + lhs + "=" + new["Path"] + "@" + new["Version"])'
    )
    [ ${#args[@]} -gt 0 ] || fail "read Traefik's replace directives" "go mod edit -json $upstream_mod" "Traefik's go.mod has no replace directives (or they are local paths)"
    run "write the replace directives" "" "$GO" mod edit "${args[@]}" "-require=github.com/traefik/traefik/v3@$TRAEFIK_VERSION"
    printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/traefik/traefik/v3/cmd/traefik"\n' > tools.go
    step "resolving the module graph (go mod tidy)"
    run "resolve Traefik's module graph" "is the Go module proxy reachable?" env GOFLAGS=-mod=mod "$GO" mod tidy -e
    # The Gateway API CRDs of the version Traefik itself is compiled against (its go.mod), so the
    # served schema and Traefik's client types agree.
    local gateway_required
    gateway_required="$("$GO" list -m -f '{{.Version}}' sigs.k8s.io/gateway-api)"
    [ "$gateway_required" = "$GATEWAY_API_VERSION" ] ||
      fail "check the Gateway API version" "go list -m sigs.k8s.io/gateway-api" \
        "Traefik $TRAEFIK_VERSION is built against sigs.k8s.io/gateway-api $gateway_required, versions.env says $GATEWAY_API_VERSION; make them agree"
    run "download sigs.k8s.io/gateway-api" "is the Go module proxy reachable?" \
      "$GO" mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" > gateway-api.json
    local gateway_dir
    gateway_dir="$(python3 -c 'import json; print(json.load(open("gateway-api.json"))["Dir"])')"
    cp "$gateway_dir"/config/crd/standard/*.yaml "$traefik_bin.tmp/crds/gateway-api/"
    cp "$upstream_dir/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml" "$traefik_bin.tmp/crds/traefik.yaml"
    chmod u+w "$traefik_bin.tmp/crds" "$traefik_bin.tmp/crds/gateway-api" "$traefik_bin.tmp"/crds/*.yaml "$traefik_bin.tmp"/crds/gateway-api/*.yaml
  ) || exit 1
  step "compiling about 2,200 packages; a line every 250"
  # The version stamp is what `traefik version` and its startup log print (else "dev").
  compile "$work" "$traefik_bin.tmp" "compile traefik" \
    "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" github.com/traefik/traefik/v3/cmd/traefik
  rm -rf "$traefik_bin" && mv "$traefik_bin.tmp" "$traefik_bin"
  step "traefik $TRAEFIK_VERSION: built into $traefik_bin"
}

# helm, for the chart's lint and template tests (tests/chart) and for the RBAC the e2e controller
# runs under (e2e/harness/chart.py). Its go.mod has no replace directives, so a plain go install
# builds it; into a temporary directory first, so a killed build never leaves a half binary cached.
build_helm() {
  if [ -x "$helm_bin/helm" ]; then
    step "helm $HELM_VERSION: cached in $helm_bin"
    return
  fi
  need_go
  step "helm $HELM_VERSION: go install helm.sh/helm/v4/cmd/helm (first time only; about 3 minutes on 2 cores with its module downloads)"
  rm -rf "$helm_bin.tmp" && mkdir -p "$helm_bin.tmp"
  # The version stamp is what `helm version` prints (else the module's pseudo-version).
  run "build helm" "is the Go module proxy reachable?" \
    env CGO_ENABLED=0 GOBIN="$helm_bin.tmp" "$GO" install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  rm -rf "$helm_bin" && mv "$helm_bin.tmp" "$helm_bin"
  step "helm $HELM_VERSION: built into $helm_bin"
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
  build_kubectl
  build_kwok
fi
# Not part of the control plane, so built for an external cluster too (--data-plane-only): it runs
# here, against whichever API server the run uses.
build_traefik
# The unit tests of the chart need it whichever cluster the e2e suite uses.
build_helm
step "all binaries ready in $(( $(date +%s) - started ))s"
echo "$cache"
