#!/usr/bin/env bash
# Smoke test of the two images: build them, run them against a real NATS, and
# check that a WebSocket client on the gateway container receives a message
# published through the publisher container. Prints the image sizes.
#
#   bash deploy/image-smoke.sh
#
# Needs a Docker engine (when none answers and DOCKER_LOCAL names a script
# that starts one, the smoke runs it first), nats-server on PATH, curl and
# Node 20.10+ (the client uses Node's built-in WebSocket; no npm ci needed).
# Everything runs with host networking on 127.0.0.1 and free ports. The
# containers run as Compose runs them: read-only root filesystem, no
# capabilities, no-new-privileges, nofile 65536/1048576 with
# MIN_OPEN_FILES=65536 (lower when the engine's own limit is lower), health
# and metrics on METRICS_PORT.
#
# Environment: DOCKER_LOCAL (above); GATEWAY_IMAGE / PUBLISHER_IMAGE (default
# herald-gateway:local, herald-publisher:local, the Compose defaults);
# NODE_IMAGE (passed as the build argument when set); SMOKE_BUILD=0 reuses
# the images already built.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
gateway_image=${GATEWAY_IMAGE:-herald-gateway:local}
publisher_image=${PUBLISHER_IMAGE:-herald-publisher:local}
suffix="smoke-$$"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/herald-image-smoke.XXXXXX")
nats_pid=""
containers=()
ok=0

log() { printf '[image-smoke] %s\n' "$*"; }
die() { log "FAIL: $*"; exit 1; }

cleanup() {
  local status=$?
  if [ "$ok" != 1 ]; then
    for c in "${containers[@]}"; do
      log "--- last log lines of $c"
      docker logs --tail 40 "$c" 2>&1 | sed 's/^/    /' || true
    done
    if [ -f "$tmp/nats.log" ] && grep -q -E '\[(WRN|ERR|FTL)\]' "$tmp/nats.log"; then
      log "--- nats-server's warnings and errors"
      grep -E '\[(WRN|ERR|FTL)\]' "$tmp/nats.log" | tail -n 20 | sed 's/^/    /'
    fi
  fi
  for c in "${containers[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
  if [ -n "$nats_pid" ] && kill -0 "$nats_pid" 2>/dev/null; then
    kill "$nats_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$nats_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$nats_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in docker nats-server curl node; do
  command -v "$tool" >/dev/null || die "$tool is not on PATH"
done
node -e 'process.exit(typeof process.versions.node === "string" && Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || die "Node 20 or later is needed for the client (built-in WebSocket)"

# ------------------------------------------------------------------ engine
if ! docker info >/dev/null 2>&1; then
  [ -n "${DOCKER_LOCAL:-}" ] || die "no Docker engine answers: start one (or set DOCKER_LOCAL to a script that starts one)"
  [ -f "$DOCKER_LOCAL" ] || die "no Docker engine answers and DOCKER_LOCAL=$DOCKER_LOCAL does not exist"
  log "no Docker engine answers: running $DOCKER_LOCAL"
  bash "$DOCKER_LOCAL"
  docker info >/dev/null 2>&1 || die "still no Docker engine after $DOCKER_LOCAL"
fi
log "engine: Docker $(docker version -f '{{.Server.Version}}')"

# ------------------------------------------------------------------ build
build() { # dockerfile tag
  local args=(build --network host -f "$1" -t "$2")
  [ -n "${NODE_IMAGE:-}" ] && args+=(--build-arg "NODE_IMAGE=$NODE_IMAGE")
  local start=$SECONDS
  if ! docker "${args[@]}" . >"$tmp/build-$(basename "$(dirname "$1")").log" 2>&1; then
    tail -n 40 "$tmp/build-$(basename "$(dirname "$1")").log" | sed 's/^/    /'
    die "docker build of $2 failed"
  fi
  log "built $2 in $((SECONDS - start)) s"
}
if [ "${SMOKE_BUILD:-1}" != 0 ]; then
  build services/gateway/Dockerfile "$gateway_image"
  build services/publisher/Dockerfile "$publisher_image"
else
  for image in "$gateway_image" "$publisher_image"; do
    docker image inspect "$image" >/dev/null 2>&1 || die "SMOKE_BUILD=0 but $image does not exist"
  done
  log "SMOKE_BUILD=0: using the existing $gateway_image and $publisher_image"
fi

# ------------------------------------------------------------------ ports and secrets
# Six free loopback ports at once (held together, so they are distinct).
read -r nats_port nats_mon gw_port gw_metrics pub_port pub_metrics < <(node -e '
  const net = require("node:net");
  const servers = Array.from({ length: 6 }, () => net.createServer());
  Promise.all(servers.map((s) => new Promise((r) => s.listen(0, "127.0.0.1", () => r(s.address().port)))))
    .then((ports) => { console.log(ports.join(" ")); servers.forEach((s) => s.close()); });')
jwt_secret=$(node -p 'require("node:crypto").randomBytes(48).toString("base64")')
api_key=$(node -p 'require("node:crypto").randomBytes(24).toString("base64url")')

# ------------------------------------------------------------------ nats-server
mkdir -p "$tmp/js"
nats-server -a 127.0.0.1 -p "$nats_port" -m "$nats_mon" -js -sd "$tmp/js" >"$tmp/nats.log" 2>&1 &
nats_pid=$!
wait_http() { # name url seconds [pid-or-container]
  local name=$1 url=$2 limit=$3 watch=${4:-} deadline=$((SECONDS + $3)) code=""
  while [ "$SECONDS" -lt "$deadline" ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
    [ "$code" = 200 ] && { log "$name: $url -> 200"; return 0; }
    if [ -n "$watch" ]; then
      case "$watch" in
        pid:*) kill -0 "${watch#pid:}" 2>/dev/null || die "$name exited" ;;
        *) [ "$(docker inspect -f '{{.State.Running}}' "$watch" 2>/dev/null)" = true ] || die "$name exited ($(docker inspect -f 'exit code {{.State.ExitCode}}' "$watch" 2>/dev/null))" ;;
      esac
    fi
    sleep 0.5
  done
  die "$name: $url did not answer 200 within $limit s (last: ${code:-no answer})"
}
wait_http "nats-server" "http://127.0.0.1:$nats_mon/healthz?js-server-only=true" 20 "pid:$nats_pid"

# ------------------------------------------------------------------ containers
# Compose's nofile limits (65536 soft, 1048576 hard) when the engine may grant
# them; an engine whose own hard limit is lower cannot (runc: "error setting
# rlimits"), so the smoke then uses that limit for both and for MIN_OPEN_FILES.
engine_hard=$(docker run --rm --network host --entrypoint sh "$gateway_image" -c 'ulimit -Hn')
case "$engine_hard" in unlimited) engine_hard=1048576 ;; ''|*[!0-9]*) die "cannot read the engine's open-files limit" ;; esac
nofile_hard=$((engine_hard < 1048576 ? engine_hard : 1048576))
nofile_soft=$((nofile_hard < 65536 ? nofile_hard : 65536))
[ "$nofile_hard" -lt 1048576 ] && log "the engine's open-files hard limit is $engine_hard: containers get nofile=$nofile_soft:$nofile_hard (Compose asks for 65536:1048576)"
hardening=(--network host --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges
           --ulimit "nofile=$nofile_soft:$nofile_hard")
run() { # name image env...
  local name=$1 image=$2; shift 2
  local envs=()
  for e in "$@"; do envs+=(-e "$e"); done
  containers+=("$name")
  docker run -d --name "$name" "${hardening[@]}" "${envs[@]}" "$image" >/dev/null
}
start=$SECONDS
run "herald-gateway-$suffix" "$gateway_image" \
  GATEWAY_HOST=127.0.0.1 GATEWAY_PORT="$gw_port" METRICS_PORT="$gw_metrics" \
  NATS_URL="nats://127.0.0.1:$nats_port" JWT_SECRET="$jwt_secret" MIN_OPEN_FILES="$nofile_soft" DRAIN_SECONDS=2
run "herald-publisher-$suffix" "$publisher_image" \
  PUBLISHER_HOST=127.0.0.1 PUBLISHER_PORT="$pub_port" METRICS_PORT="$pub_metrics" \
  NATS_URL="nats://127.0.0.1:$nats_port" PUBLISHER_API_KEY="$api_key" JWT_SECRET="$jwt_secret"
wait_http "gateway" "http://127.0.0.1:$gw_metrics/readyz" 60 "herald-gateway-$suffix"
wait_http "publisher" "http://127.0.0.1:$pub_metrics/readyz" 60 "herald-publisher-$suffix"
log "both containers ready $((SECONDS - start)) s after docker run"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$gw_port/metrics" || true)
[ "$code" = 404 ] || die "the gateway's client port answered /metrics with $code, expected 404 (METRICS_PORT is set)"
log "gateway client port: /metrics -> 404 (served on METRICS_PORT only)"
fd_line=$(docker logs "herald-gateway-$suffix" 2>&1 | grep -m 1 '"open files limit"' || true)
log "gateway runs as uid:gid $(docker exec "herald-gateway-$suffix" sh -c 'echo "$(id -u):$(id -g)"'), open files" \
    "soft $(sed -n 's/.*"soft":\([0-9]*\).*/\1/p' <<<"$fd_line") hard $(sed -n 's/.*"hard":\([0-9]*\).*/\1/p' <<<"$fd_line")"

# ------------------------------------------------------------------ the message
GATEWAY_URL="ws://127.0.0.1:$gw_port/ws" PUBLISHER_URL="http://127.0.0.1:$pub_port" \
  JWT_SECRET="$jwt_secret" PUBLISHER_API_KEY="$api_key" TIMEOUT_MS=15000 \
  node --experimental-websocket --no-warnings "$repo/deploy/image-smoke-client.mjs" \
  || die "the client did not receive the published message"

# ------------------------------------------------------------------ image health checks
# The images' own HEALTHCHECK (interval 10 s) must report healthy too.
deadline=$((SECONDS + 40))
for c in "herald-gateway-$suffix" "herald-publisher-$suffix"; do
  while :; do
    health=$(docker inspect -f '{{.State.Health.Status}}' "$c")
    [ "$health" = healthy ] && break
    [ "$SECONDS" -lt "$deadline" ] || die "$c: HEALTHCHECK status is $health after 40 s"
    sleep 1
  done
  log "$c: HEALTHCHECK healthy"
done

# ------------------------------------------------------------------ sizes
base=${NODE_IMAGE:-node:20-bookworm-slim}
mb() { node -p "($1 / 1e6).toFixed(1)"; }
base_bytes=$(docker image inspect -f '{{.Size}}' "$base" 2>/dev/null || echo 0)
log "image sizes (uncompressed, as docker image ls shows them; MB = 10^6 bytes):"
for image in "$gateway_image" "$publisher_image"; do
  bytes=$(docker image inspect -f '{{.Size}}' "$image")
  line="  $image: $bytes bytes = $(mb "$bytes") MB"
  [ "$base_bytes" != 0 ] && line+=" ($(mb "$((bytes - base_bytes))") MB on top of $base)"
  log "$line"
done
[ "$base_bytes" != 0 ] && log "  $base (base): $base_bytes bytes = $(mb "$base_bytes") MB"
for image in "$gateway_image" "$publisher_image" "$base"; do
  docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' "$image" | sed 's/^/[image-smoke]   docker image ls: /'
done

ok=1
log "PASS: /readyz 200 on both, a client on the gateway container got a message published through the publisher container ($((SECONDS)) s in all)"
