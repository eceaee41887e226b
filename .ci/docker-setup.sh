#!/usr/bin/env bash
# Give the test suite a real Docker engine and a local Python image.
#
#   1. If `docker info` does not answer: install Debian's docker.io (and
#      debootstrap), start dockerd in the background (log: $DOCKERD_LOG) and
#      wait, bounded, until it answers.
#   2. If the image $CODEMODE_TEST_DOCKER_IMAGE (default
#      codemode-python:bookworm) is missing: import it from a cached rootfs
#      tarball, building that tarball with debootstrap first if it is missing
#      too. Nothing is pulled: no registry is reachable from these machines.
#
# Idempotent: a second run on the same machine does nothing but check. The
# tarball stays in $CODEMODE_DOCKER_CACHE so a machine whose dockerd data dir
# was wiped re-imports in seconds instead of re-running debootstrap (~30 s).
# Runs as root on Debian bookworm. Each step prints how long it took.
set -euo pipefail

IMAGE="${CODEMODE_TEST_DOCKER_IMAGE:-codemode-python:bookworm}"
CACHE_DIR="${CODEMODE_DOCKER_CACHE:-/var/cache/codemode}"
TARBALL="$CACHE_DIR/python-bookworm.tar"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
DOCKERD_WAIT_SECS="${DOCKERD_WAIT_SECS:-60}"
SUITE=bookworm
# `docker import` keeps no config: give the image a sane PATH, locale and CMD.
IMPORT_CHANGES=(
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  --change 'ENV LANG=C.UTF-8'
  --change 'CMD ["python3"]'
)

now_ms() { date +%s%3N; }
SCRIPT_START=$(now_ms)
# Steps nest (the image step may debootstrap), so each keeps its own start.
STEP_NAMES=()
STEP_STARTS=()
begin() {
  STEP_NAMES+=("$*")
  STEP_STARTS+=("$(now_ms)")
  printf 'docker-setup: %s ...\n' "$*" >&2
}
end() {
  local last=$(( ${#STEP_NAMES[@]} - 1 ))
  local took=$(( $(now_ms) - STEP_STARTS[last] ))
  printf 'docker-setup: %s: done in %d.%03d s\n' "${STEP_NAMES[last]}" $((took / 1000)) $((took % 1000)) >&2
  unset 'STEP_NAMES[last]' 'STEP_STARTS[last]'
}
die() { printf 'docker-setup: error: %s\n' "$*" >&2; exit 1; }

engine_answers() { docker info >/dev/null 2>&1; }

# A live dockerd: a killed one can linger as a zombie under the name, which
# must not count as running.
dockerd_alive() {
  local pid state
  for pid in $(pgrep -x dockerd 2>/dev/null); do
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
    [[ -n "$state" && "$state" != Z ]] && return 0
  done
  return 1
}

APT_UPDATED=""
apt_install() {
  # One `apt-get update` per run, and only when something is actually missing.
  if [[ -z "$APT_UPDATED" ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- 1. the engine ----------------------------------------------------------
begin "engine"
if engine_answers; then
  echo "docker-setup: an engine already answers" >&2
else
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    # docker.io brings dockerd, containerd and runc; debootstrap is for step 2.
    apt_install docker.io debootstrap
  fi
  # A dockerd that is running but not answering yet (a previous run's, still
  # starting) must not get a twin: two daemons fight over /var/lib/docker.
  if ! dockerd_alive; then
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    # setsid + nohup: dockerd outlives this script and the CI step's shell.
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
  deadline=$(( $(date +%s) + DOCKERD_WAIT_SECS ))
  until engine_answers; do
    if (( $(date +%s) >= deadline )); then
      echo "docker-setup: last lines of $DOCKERD_LOG:" >&2
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      die "dockerd did not answer within ${DOCKERD_WAIT_SECS}s (see $DOCKERD_LOG)"
    fi
    if ! dockerd_alive; then
      echo "docker-setup: last lines of $DOCKERD_LOG:" >&2
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      die "dockerd exited while starting (see $DOCKERD_LOG)"
    fi
    sleep 0.5
  done
fi
docker version --format 'docker-setup: engine {{.Server.Version}} (API {{.Server.APIVersion}})' >&2 || true
end

# --- 2. the image -----------------------------------------------------------
begin "image $IMAGE"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "docker-setup: image $IMAGE already present" >&2
else
  if [[ ! -s "$TARBALL" ]]; then
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    mkdir -p "$CACHE_DIR"
    rootfs=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    begin "debootstrap $SUITE (python3)"
    # minbase + python3: python3-minimal alone lacks json and http, which the
    # generated bridge module needs.
    if ! debootstrap --variant=minbase --include=python3 "$SUITE" "$rootfs" \
        >"$CACHE_DIR/debootstrap.log" 2>&1; then
      tail -n 30 "$CACHE_DIR/debootstrap.log" >&2 || true
      die "debootstrap failed (see $CACHE_DIR/debootstrap.log)"
    fi
    # Nothing in the image needs apt's downloaded .debs or lists.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    end
    begin "pack $TARBALL + docker import $IMAGE"
    # One pass: tee the tarball into the cache while docker imports it. Write
    # beside, then rename: an interrupted run never leaves a truncated tarball
    # that later runs would trust.
    tar -C "$rootfs" --numeric-owner -c . \
      | tee "$TARBALL.partial" \
      | docker import "${IMPORT_CHANGES[@]}" - "$IMAGE" >/dev/null
    mv -f "$TARBALL.partial" "$TARBALL"
    rm -rf "$rootfs"
    trap - EXIT
    end
  else
    begin "docker import $IMAGE from cached $TARBALL"
    docker import "${IMPORT_CHANGES[@]}" "$TARBALL" "$IMAGE" >/dev/null
    end
  fi
fi
docker run --rm --network none "$IMAGE" python3 -c 'import json, http.client, sys; print("docker-setup: python", sys.version.split()[0], "in", sys.argv[1])' "$IMAGE" >&2 \
  || die "image $IMAGE does not run python3"
end

total=$(( $(now_ms) - SCRIPT_START ))
printf 'docker-setup: ready in %d.%03d s: engine up, image %s (export CODEMODE_TEST_DOCKER_IMAGE=%s)\n' \
  $((total / 1000)) $((total % 1000)) "$IMAGE" "$IMAGE" >&2
