# Build (once) and cache kube-apiserver and kube-controller-manager v1.20.2 from Debian's
# `kubernetes` source package. Sourced by e2e/cluster; needs lib/common.sh and E2E_DIR.
# shellcheck shell=bash

# The Debian source package version the binaries are built from; it is also the cache key.
REGIE_K8S_DEB_VERSION=${REGIE_K8S_DEB_VERSION:-1.20.5+really1.20.2-1.1+deb12u1}
# The upstream version the binaries report (/version, --version).
REGIE_K8S_GIT_VERSION=${REGIE_K8S_GIT_VERSION:-v1.20.2}
REGIE_CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/regie
CONTROL_PLANE_CACHE=$REGIE_CACHE_ROOT/control-plane
# How long to wait for another process that is building the same binaries.
REGIE_BUILD_LOCK_TIMEOUT=${REGIE_BUILD_LOCK_TIMEOUT:-1800}

CONTROL_PLANE_BINARIES=(kube-apiserver kube-controller-manager)

# cache_complete DIR: the directory holds both binaries (it only ever appears complete, as it
# is renamed into place after a successful build).
cache_complete() {
  local b
  for b in "${CONTROL_PLANE_BINARIES[@]}"; do
    [[ -x $1/$b ]] || return 1
  done
}

# find_cached_control_plane: prints the cache directory to use, or nothing.
# The pinned version first; otherwise the newest complete cache of the same upstream version
# (the Debian archive may have moved on to a new revision of the same 1.20.2 source).
find_cached_control_plane() {
  if cache_complete "$CONTROL_PLANE_CACHE/$REGIE_K8S_DEB_VERSION"; then
    printf '%s\n' "$CONTROL_PLANE_CACHE/$REGIE_K8S_DEB_VERSION"
    return 0
  fi
  local d best=""
  while IFS= read -r d; do
    cache_complete "$d" && best=$d
  done < <(find "$CONTROL_PLANE_CACHE" -mindepth 1 -maxdepth 1 -type d -name "*really${REGIE_K8S_GIT_VERSION#v}-*" 2>/dev/null | sort -V)
  [[ -n $best ]] && printf '%s\n' "$best"
  return 0
}

# The source package version to build: the pinned one if the archive still has it, else the
# newest one the archive offers for the same upstream version.
pick_source_version() {
  local versions
  versions=$(apt-cache showsrc kubernetes 2>/dev/null | sed -n 's/^Version: //p')
  if grep -qxF "$REGIE_K8S_DEB_VERSION" <<<"$versions"; then
    printf '%s\n' "$REGIE_K8S_DEB_VERSION"
    return 0
  fi
  local alt
  alt=$(grep -F "really${REGIE_K8S_GIT_VERSION#v}-" <<<"$versions" | sort -V | tail -n 1 || true)
  [[ -n $alt ]] || die "the apt archive has no kubernetes source package $REGIE_K8S_DEB_VERSION (it has: ${versions//$'\n'/ }); set REGIE_K8S_DEB_VERSION"
  warn "kubernetes source $REGIE_K8S_DEB_VERSION is gone from the archive; building $alt"
  printf '%s\n' "$alt"
}

# build_control_plane VERSION: builds into a temporary directory under the cache and renames
# the result into place. Runs in a subshell so that its traps and directory changes stay local.
build_control_plane() (
  set -euo pipefail
  local version=$1
  local dest=$CONTROL_PLANE_CACHE/$version
  local tmp
  tmp=$(mktemp -d "$CONTROL_PLANE_CACHE/.build.XXXXXX")
  local buildlog=$tmp/build.log
  # shellcheck disable=SC2317 # invoked by the trap
  on_exit() {
    local rc=$?
    if ((rc != 0)); then
      if [[ -f $buildlog ]]; then
        cp "$buildlog" "$CONTROL_PLANE_CACHE/last-failed-build.log" 2>/dev/null || true
      fi
      warn "build failed; log: $CONTROL_PLANE_CACHE/last-failed-build.log"
    fi
    chmod -R u+w "$tmp" 2>/dev/null || true
    rm -rf "$tmp"
  }
  trap on_exit EXIT
  trap 'exit 130' INT TERM HUP

  local build_t0
  build_t0=$(now_ms)
  step() {
    log "build [+$(elapsed "$build_t0")]: $*"
    printf '\n==> %s\n' "$*" >>"$buildlog"
  }
  fail() {
    tail -n 40 "$buildlog" >&2 || true
    die "build: $*"
  }

  cd "$tmp"
  step "fetching the source package kubernetes=$version"
  (cd "$tmp" && apt-get source --download-only "kubernetes=$version") >>"$buildlog" 2>&1 ||
    fail "apt-get source --download-only kubernetes=$version failed"
  local orig
  orig=$(find "$tmp" -maxdepth 1 -name 'kubernetes_*.orig.tar.*' | head -n 1)
  [[ -n $orig ]] || fail "no .orig tarball among the downloaded source files"
  step "unpacking $(basename "$orig")"
  mkdir -p "$tmp/src"
  tar -xf "$orig" -C "$tmp/src" --strip-components=1 >>"$buildlog" 2>&1 || fail "unpacking $orig failed"
  rm -f "$tmp"/kubernetes_*

  # GOPATH mode: module mode fails on this tree ("updates to go.mod needed").
  local gopath=$tmp/gopath
  local pkgdir=$gopath/src/k8s.io/kubernetes
  mkdir -p "$gopath/src/k8s.io"
  ln -s "$tmp/src" "$pkgdir"
  # The Go build cache outlives an interrupted build (a test's watchdog, a timeout), so the next
  # try resumes instead of starting over; it is removed once the binaries are in place.
  export GOPATH=$gopath GO111MODULE=off CGO_ENABLED=0 GOFLAGS='' GOCACHE=$CONTROL_PLANE_CACHE/gocache GOTOOLCHAIN=local
  export GOTMPDIR=$tmp/gotmp
  mkdir -p "$GOTMPDIR"

  # reflect2 v1.0.1 (vendored) breaks under Go >= 1.18: kube-apiserver dies with
  # "fatal error: fault" in mapiterinit the first time a custom resource is watched.
  # Debian's golang-github-modern-go-reflect2-dev (1.0.2) has the fix.
  local fixed=/usr/share/gocode/src/github.com/modern-go/reflect2
  local vendored=$tmp/src/vendor/github.com/modern-go/reflect2
  [[ -f $fixed/reflect2.go ]] || fail "$fixed missing (install golang-github-modern-go-reflect2-dev)"
  [[ -d $vendored ]] || fail "$vendored missing from the source tree"
  step "replacing the vendored reflect2 with $fixed"
  rm -f "$vendored"/*.go "$vendored"/*.s
  local f
  for f in "$fixed"/*.go "$fixed"/*.s; do
    [[ $f == *_test.go ]] && continue
    cp "$f" "$vendored/"
  done

  cd "$pkgdir"
  # The tree lacks pkg/generated/openapi/zz_generated.openapi.go.
  step "make gen_openapi"
  make gen_openapi >>"$buildlog" 2>&1 || fail "make gen_openapi failed"
  [[ -f pkg/generated/openapi/zz_generated.openapi.go ]] || fail "make gen_openapi did not create zz_generated.openapi.go"

  local ldflags="" p minor
  minor=${REGIE_K8S_GIT_VERSION#v*.}
  minor=${minor%%.*}
  for p in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$REGIE_K8S_GIT_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$tmp/out"
  step "go build ./cmd/kube-apiserver ./cmd/kube-controller-manager ($(go version | cut -d' ' -f3))"
  go build -trimpath -o "$tmp/out/" -ldflags "-s -w$ldflags" ./cmd/kube-apiserver ./cmd/kube-controller-manager >>"$buildlog" 2>&1 ||
    fail "go build failed"
  local b v
  for b in "${CONTROL_PLANE_BINARIES[@]}"; do
    v=$("$tmp/out/$b" --version 2>&1) || fail "$b --version failed: $v"
    [[ $v == *"$REGIE_K8S_GIT_VERSION"* ]] || fail "$b reports '$v', expected $REGIE_K8S_GIT_VERSION"
  done
  {
    echo "debian_source_version=$version"
    echo "git_version=$REGIE_K8S_GIT_VERSION"
    echo "go=$(go version)"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  } >"$tmp/out/BUILD-INFO"
  cd /
  # Atomic: the cache directory appears complete or not at all.
  rm -rf "$dest"
  mv -T "$tmp/out" "$dest"
  rm -rf "$CONTROL_PLANE_CACHE/gocache"
  log "build [+$(elapsed "$build_t0")]: done, cached in $dest"
)

# ensure_control_plane: sets CONTROL_PLANE_DIR to a directory holding both binaries, building
# them first if no cache has them. Builds are serialized by a lock, so concurrent callers wait
# for one build instead of each running their own.
ensure_control_plane() {
  CONTROL_PLANE_DIR=$(find_cached_control_plane)
  [[ -n $CONTROL_PLANE_DIR ]] && return 0
  mkdir -p "$CONTROL_PLANE_CACHE"
  local lockfile=$CONTROL_PLANE_CACHE/.build.lock
  (
    exec 8>"$lockfile"
    if ! flock -n 8; then
      log "another process is building the control plane; waiting (up to ${REGIE_BUILD_LOCK_TIMEOUT}s)"
      flock -w "$REGIE_BUILD_LOCK_TIMEOUT" 8 || die "timed out waiting for the build lock $lockfile"
    fi
    [[ -n $(find_cached_control_plane) ]] && exit 0
    # Left over by interrupted builds (we hold the lock, so nobody is using them).
    find "$CONTROL_PLANE_CACHE" -mindepth 1 -maxdepth 1 -name '.build.*' -type d -exec rm -rf {} + 2>/dev/null || true
    "$E2E_DIR/install-deps" build
    local version
    version=$(pick_source_version)
    log "building kube-apiserver and kube-controller-manager $REGIE_K8S_GIT_VERSION from Debian source $version (several minutes on 2 cores; cached afterwards)"
    build_control_plane "$version"
  )
  CONTROL_PLANE_DIR=$(find_cached_control_plane)
  [[ -n $CONTROL_PLANE_DIR ]] || die "the control plane binaries are still missing after the build"
}
