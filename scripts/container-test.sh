#!/usr/bin/env bash
# Build the brainenc image (runtime and test stages) and run it as users do: offline
# (--network none), as an unprivileged user id, on a read-only root (--read-only
# --tmpfs /tmp). Runs --version, the demo data generator, a participant and the group
# job, and checks the outputs, their owner and their modes.
#
#   bash scripts/container-test.sh            # CPU-only torch (the CI build)
#   TORCH_BUILD=cuda bash scripts/container-test.sh
#
# Engine: Docker when a daemon answers, otherwise rootful podman (installed with apt-get
# when absent and run as root). Base image: python:3.11-slim-bookworm, or, when it cannot
# be pulled, a stand-in built once with debootstrap. The host's pip settings (index,
# mirrors, CA bundle) reach the build as secrets. Layers are cached by the engine, so a
# rerun rebuilds only what changed.
#
# Settings (environment): IMAGE (brainenc), TORCH_BUILD (cpu | cuda), CONTAINER_ENGINE
# (docker | podman), PYTEST_ARGS (passed to the test stage's pytest), SKIP_TEST_STAGE=1,
# RUN_UID (4321), STATE_DIR (where the run's files go; default a fresh temporary folder),
# KEEP_STATE=1 (keep the outputs of a run whose checks all passed).
#
# Exit codes: 0 every check passed; 1 a build or a check failed; 77 no container engine
# could be used here (nothing was checked).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
IMAGE="${IMAGE:-brainenc}"
TORCH_BUILD="${TORCH_BUILD:-cpu}"
RUN_UID="${RUN_UID:-4321}"
BASE_IMAGE="python:3.11-slim-bookworm"
STANDIN="localhost/python-standin:3.11-slim-bookworm"
STATE_DIR="${STATE_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/brainenc-container.XXXXXX")}"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/bids_app/_version.py")"
PASSED=0
FAILED=0

say() { printf 'container: %s\n' "$*" >&2; }
skip() { say "skipped: $*"; exit 77; }
die() { say "FAILED: $*"; exit 1; }
check() {  # check "what" command...: one named check, counted
    local what="$1"; shift
    if "$@"; then PASSED=$((PASSED + 1)); say "ok: $what"
    else FAILED=$((FAILED + 1)); say "FAILED: $what"; fi
}
seconds() { date +%s; }

case "$TORCH_BUILD" in
    cpu|cuda) ;;
    *) say "'TORCH_BUILD' must be one of {cpu, cuda}; got '$TORCH_BUILD'"; exit 2 ;;
esac

# ----------------------------------------------------------------------------- engine
ENGINE=()
BUILD_FLAGS=()
RUN_FLAGS=()
pick_engine() {
    local want="${CONTAINER_ENGINE:-}"
    if [ "$want" != podman ] && command -v docker >/dev/null \
            && timeout 20 docker info >/dev/null 2>&1; then
        ENGINE=(docker); export DOCKER_BUILDKIT=1; return
    fi
    [ "$want" = docker ] && skip "CONTAINER_ENGINE=docker but no Docker daemon answers ('docker info')"
    if ! command -v podman >/dev/null; then
        if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
            skip "no Docker daemon answers and podman is not installed (installing it needs root and apt-get)"
        fi
        say "installing podman from the Debian packages"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            podman buildah runc uidmap debootstrap >/dev/null) \
            || skip "podman could not be installed with apt-get"
    fi
    [ "$(id -u)" = 0 ] || skip "podman is used rootful here and this user is not root"
    ENGINE=(podman)
    # crun refuses hybrid cgroup layouts; runc runs on both
    if command -v runc >/dev/null; then ENGINE+=(--runtime runc); fi
    # podman's default rlimits cannot be raised without CAP_SYS_RESOURCE
    local limits=(--ulimit nofile=20000:20000 --ulimit nproc=16384:16384)
    BUILD_FLAGS+=("${limits[@]}" --network host --layers)
    RUN_FLAGS+=("${limits[@]}")
}

# ----------------------------------------------------------------------------- base image
pick_base() {
    if "${ENGINE[@]}" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return; fi
    if timeout 180 "${ENGINE[@]}" pull "docker.io/library/$BASE_IMAGE" >/dev/null 2>&1; then
        return
    fi
    BASE_IMAGE="$STANDIN"
    if "${ENGINE[@]}" image inspect "$STANDIN" >/dev/null 2>&1; then
        say "base image: $STANDIN (the registry is unreachable; built earlier)"
        return
    fi
    [ "$(id -u)" = 0 ] || die "the base image cannot be pulled and a stand-in needs root (debootstrap)"
    if ! command -v debootstrap >/dev/null; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            debootstrap >/dev/null) || die "debootstrap could not be installed"
    fi
    local mirror rootfs
    mirror="$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources \
        2>/dev/null | head -1)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    rootfs="$STATE_DIR/standin-rootfs"
    say "base image: building $STANDIN with debootstrap from $mirror"
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
        bookworm "$rootfs" "$mirror" >"$STATE_DIR/debootstrap.log" 2>&1 \
        || die "debootstrap failed; see $STATE_DIR/debootstrap.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" --numeric-owner -c . | "${ENGINE[@]}" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$STANDIN" >/dev/null \
        || die "importing the debootstrap root as $STANDIN failed"
    rm -rf "$rootfs"
}

# ----------------------------------------------------------------------------- pip settings
# The host's effective pip settings, as one pip.conf for the build; a CA bundle goes in as
# its own secret. Local folders it names (find-links, file:// indexes) are bound
# read-only into podman builds; Docker builds cannot see them and they are left out.
pip_secrets() {
    local python="" conf="$STATE_DIR/pip/pip.conf" cert="" key value item candidate
    for candidate in python3 /usr/bin/python3 "$ROOT/.venv/bin/python"; do
        if "$candidate" -m pip --version >/dev/null 2>&1; then python="$candidate"; break; fi
    done
    [ -n "$python" ] || say "no pip on this host: the build uses pip's defaults"
    mkdir -p "$STATE_DIR/pip"
    printf '[global]\n' >"$conf"
    declare -A seen=()
    while IFS= read -r line; do
        key="${line%%=*}"; key="${key#*.}"
        value="${line#*=}"; value="${value#\'}"; value="${value%\'}"
        [ -n "${seen[$key]:-}" ] && continue
        seen[$key]=1
        case "$key" in
            cert) cert="$value" ;;
            index-url|extra-index-url|find-links|trusted-host|timeout|default-timeout|retries)
                local kept=()
                for item in $value; do
                    local path="${item#file://}" bind
                    if [ "$path" != "$item" ] || [ "${item#/}" != "$item" ]; then
                        bind="${path%/}"
                        # a simple index links to its files beside it (../../files/...)
                        [ "${bind##*/}" = simple ] && bind="${bind%/simple}"
                        if [ "${ENGINE[0]}" = podman ] && [ -d "$path" ]; then
                            BUILD_FLAGS+=(-v "$bind:$bind:ro")
                        else
                            continue
                        fi
                    fi
                    kept+=("$item")
                done
                [ "${#kept[@]}" -gt 0 ] && printf '%s = %s\n' "$key" "${kept[*]}" >>"$conf"
                ;;
        esac
    done < <([ -n "$python" ] && "$python" -m pip config list 2>/dev/null \
             | sed -e 's/^:env:\./env./' | sort)  # env.* (PIP_*) before global.*
    cert="${cert:-${PIP_CERT:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-}}}}"
    if [ -n "$cert" ] && [ -f "$cert" ]; then
        cp "$cert" "$STATE_DIR/pip/ca.crt"
        printf 'cert = /run/secrets/pip-ca\n' >>"$conf"
        BUILD_FLAGS+=(--secret "id=pip-ca,src=$STATE_DIR/pip/ca.crt")
    fi
    BUILD_FLAGS+=(--secret "id=pip-conf,src=$conf")
}

torch_args() {
    [ "$TORCH_BUILD" = cuda ] && return
    BUILD_FLAGS+=(--build-arg TORCH_LOCAL=+cpu)
    local index="https://download.pytorch.org/whl/cpu/"
    if python3 -c "import urllib.request as u; u.urlopen('$index', timeout=10)" 2>/dev/null; then
        BUILD_FLAGS+=(--build-arg "TORCH_INDEX_URL=$index")
    else
        say "the PyTorch CPU index is unreachable: the CPU wheel must come from the pip settings"
    fi
}

image_size_mb() {
    echo $(( $("${ENGINE[@]}" image inspect --format '{{.Size}}' "$1") / 1000000 ))
}

# ----------------------------------------------------------------------------- build
pick_engine
say "engine: ${ENGINE[*]}; state: $STATE_DIR"
pick_base
pip_secrets
torch_args
TAG="$IMAGE:$VERSION-$TORCH_BUILD"
start=$(seconds)
"${ENGINE[@]}" build "${BUILD_FLAGS[@]}" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --build-arg "VERSION=$VERSION" --build-arg "VCS_REF=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)" \
    --target runtime -t "$TAG" -f "$ROOT/Dockerfile" "$ROOT" >"$STATE_DIR/build-runtime.log" 2>&1 \
    || { tail -40 "$STATE_DIR/build-runtime.log" >&2; die "the runtime stage did not build"; }
say "runtime stage built in $(( $(seconds) - start )) s; image $TAG: $(image_size_mb "$TAG") MB"

if [ "${SKIP_TEST_STAGE:-0}" != 1 ]; then
    start=$(seconds)
    "${ENGINE[@]}" build "${BUILD_FLAGS[@]}" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        --build-arg "VERSION=$VERSION" --build-arg "PYTEST_ARGS=${PYTEST_ARGS:-}" \
        --target test -t "$IMAGE:test" -f "$ROOT/Dockerfile" "$ROOT" \
        >"$STATE_DIR/build-test.log" 2>&1 \
        || { tail -60 "$STATE_DIR/build-test.log" >&2; die "the test stage did not build (its test suite failed?)"; }
    say "test stage built (test suite passed inside the image) in $(( $(seconds) - start )) s"
    grep -E '^[0-9]+ passed' "$STATE_DIR/build-test.log" | tail -1 | sed 's/^/container: test stage: /' >&2 || true
fi

# earlier builds' runtime and test images, now untagged (the cached builder layers stay)
"${ENGINE[@]}" image prune -f --filter label=org.opencontainers.image.title=brainenc \
    >/dev/null 2>&1 || true

# ----------------------------------------------------------------------------- run
DATA="$STATE_DIR/data"
rm -rf "$DATA"
mkdir -p "$DATA/bids" "$DATA/out" "$DATA/work"
chown "$RUN_UID:$RUN_UID" "$DATA/bids" "$DATA/out" "$DATA/work"
run() {  # run [--entrypoint X] ARGS...: the image as users run it
    "${ENGINE[@]}" run --rm --network none -u "$RUN_UID:$RUN_UID" --read-only --tmpfs /tmp \
        "${RUN_FLAGS[@]}" "$@"
}

version_is_right() { [ "$(run "$TAG" --version)" = "brainenc v$VERSION" ]; }
check "--version prints brainenc v$VERSION" version_is_right

demo_data() {
    run -v "$DATA/bids:/bids" --entrypoint brainenc-demo-data "$TAG" /bids --subjects 2 \
        --seed 42 >"$STATE_DIR/demo.log" 2>&1 \
        && [ -f "$DATA/bids/dataset_description.json" ] \
        && [ "$(find "$DATA/bids" -name '*_bold.nii.gz' | wc -l)" -gt 0 ]
}
check "the demo data generator writes a BIDS dataset" demo_data

start=$(seconds)
participant() {
    run -v "$DATA/bids:/bids:ro" -v "$DATA/out:/out" -v "$DATA/work:/work" "$TAG" \
        /bids /out participant --participant-label 01 02 -w /work --nprocs 2 \
        >"$STATE_DIR/participant.log" 2>&1
}
check "a participant job (sub-01, sub-02) exits 0" participant
say "participant job: $(( $(seconds) - start )) s"
group() {
    run -v "$DATA/bids:/bids:ro" -v "$DATA/out:/out" -v "$DATA/work:/work" "$TAG" \
        /bids /out group -w /work >"$STATE_DIR/group.log" 2>&1
}
check "the group job exits 0" group

outputs_exist() {
    local f
    for f in dataset_description.json sub-01.html sub-02.html group/group.html; do
        [ -s "$DATA/out/$f" ] || { say "missing: $f"; return 1; }
    done
    [ "$(find "$DATA/out/sub-01" -name '*_stat-r_*_statmap.nii.gz' | wc -l)" -gt 0 ] \
        && [ "$(find "$DATA/out/group" -name '*_statmap.nii.gz' | wc -l)" -gt 0 ]
}
check "statmaps and reports of both participants and the group exist" outputs_exist

modes_follow_umask() {  # the container's umask is 022
    local bad
    bad="$(find "$DATA/out" \( -type f ! -perm 0644 \) -o \( -type d ! -perm 0755 \) \
        -printf '%m %p\n' | head -20)"
    [ -z "$bad" ] || { say "modes not 0644/0755:"; printf '%s\n' "$bad" >&2; return 1; }
}
check "every output file is 0644 and every folder 0755 (umask 022)" modes_follow_umask

group_umask_002() {  # the README's way to run under umask 002 with Docker
    run -v "$DATA/bids:/bids:ro" -v "$DATA/out:/out" -v "$DATA/work:/work" --entrypoint sh \
        "$TAG" -c 'umask 002 && exec brainenc "$@"' brainenc /bids /out group -w /work \
        >"$STATE_DIR/group-002.log" 2>&1 || return 1
    local bad
    # files are rewritten; the folders stay as the first run (umask 022) made them
    bad="$(find "$DATA/out/group" -type f ! -perm 0664 -printf '%m %p\n' | head -20)"
    [ -z "$bad" ] || { say "modes not 0664:"; printf '%s\n' "$bad" >&2; return 1; }
}
check "the group job rerun under umask 002 rewrites its files as 0664" group_umask_002

owned_by_user() { [ -z "$(find "$DATA/out" ! -uid "$RUN_UID" | head -1)" ]; }
check "every output belongs to uid $RUN_UID" owned_by_user

no_leftovers() { [ -z "$(find "$DATA/out" -name '*.tmp*' | head -1)" ]; }
check "no temporary files are left in the outputs" no_leftovers

unknown_label() {
    local code=0
    run -v "$DATA/bids:/bids:ro" -v "$DATA/out:/out" "$TAG" /bids /out participant \
        --participant-label 99 >"$STATE_DIR/unknown.log" 2>&1 || code=$?
    [ "$code" = 4 ] && grep -q "99" "$STATE_DIR/unknown.log"
}
check "an unknown participant label exits 4 naming it" unknown_label

unwritable_out() {
    local code=0
    mkdir -p "$DATA/locked" && chown 0:0 "$DATA/locked" && chmod 0755 "$DATA/locked"
    run -v "$DATA/bids:/bids:ro" -v "$DATA/locked:/out" "$TAG" /bids /out participant \
        --participant-label 01 >"$STATE_DIR/locked.log" 2>&1 || code=$?
    [ "$code" = 5 ] && ! grep -q Traceback "$STATE_DIR/locked.log"
}
check "an unwritable OUTPUT_DIR exits 5 without a traceback" unwritable_out

# ----------------------------------------------------------------------------- apptainer
if command -v apptainer >/dev/null; then
    if [ "${ENGINE[0]}" = podman ]; then
        "${ENGINE[@]}" save --format docker-archive -o "$STATE_DIR/image.tar" "$TAG"
    else
        "${ENGINE[@]}" save -o "$STATE_DIR/image.tar" "$TAG"
    fi
    apptainer_run() {
        apptainer build --force "$STATE_DIR/brainenc.sif" "docker-archive://$STATE_DIR/image.tar" \
            >"$STATE_DIR/apptainer-build.log" 2>&1 || return 1
        rm -rf "$DATA/out-sif" "$DATA/work-sif" && mkdir -p "$DATA/out-sif" "$DATA/work-sif"
        apptainer run --containall --cleanenv -B "$DATA/bids:/bids:ro" \
            -B "$DATA/out-sif:/out" -B "$DATA/work-sif:/work" "$STATE_DIR/brainenc.sif" \
            /bids /out participant --participant-label 01 -w /work \
            >"$STATE_DIR/apptainer-run.log" 2>&1 \
            && [ -s "$DATA/out-sif/sub-01.html" ]
    }
    check "apptainer builds a SIF from the docker-archive and runs a participant job" apptainer_run
else
    say "apptainer is not installed: the Singularity/Apptainer run is not checked"
fi

if [ "$FAILED" = 0 ] && [ "${KEEP_STATE:-0}" != 1 ]; then
    rm -rf "$DATA" "$STATE_DIR/image.tar" "$STATE_DIR/brainenc.sif"
    say "logs: $STATE_DIR"
else
    say "logs and outputs: $STATE_DIR"
fi
printf 'container: %d passed, %d failed\n' "$PASSED" "$FAILED"
[ "$FAILED" = 0 ]
