#!/usr/bin/env bash
# Containers under test, on a Docker engine that cannot pull images:
#   1. build the Switchyard binaries on the host (static, CGO_ENABLED=0) and
#      pack each into a FROM-scratch image (deploy/docker/Dockerfile.local);
#   2. pack the host's Debian prometheus and redis-server, with the shared
#      libraries ldd lists, into FROM-scratch images (Dockerfile.hostpkg);
#   3. start the stack with compose.yaml + compose.ci.yaml — the shop apps,
#      prometheus (with the real prometheus/ config and rules) and redis;
#      grafana and jaeger need pulled images and are left out;
#   4. check that frontend answers a composed user through the stack, that
#      Prometheus loaded the rules and scrapes every shop app, that the shop's
#      request metric reaches Prometheus, and that redis answers;
#   5. tear everything down (also on failure, after printing the logs).
# Usage: deploy/compose-test.sh        (from anywhere; make compose-test)
# Env:   COMPOSE_TEST_BINARIES  Switchyard binaries to image (default: shop)
#        COMPOSE_TEST_SERVICES  compose services to start (default: the shop apps, prometheus, redis)
#        COMPOSE_TEST_TIMEOUT   seconds to wait for each check (default: 60)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

binaries=${COMPOSE_TEST_BINARIES:-shop}
services=${COMPOSE_TEST_SERVICES:-frontend users orders billing prometheus redis}
timeout=${COMPOSE_TEST_TIMEOUT:-60}
project=switchyard-ci-$$
compose=(docker-compose -p "$project" -f compose.yaml -f compose.ci.yaml)

log() { printf '== compose-test: %s\n' "$*"; }
fail() { printf 'compose-test: %s\n' "$*" >&2; exit 1; }
has() { [[ " $services " == *" $1 "* ]]; }

docker info >/dev/null 2>&1 || fail "docker engine not reachable (docker info failed)"
for tool in docker-compose curl python3; do
	command -v "$tool" >/dev/null || fail "$tool is not installed"
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Free host ports, so a running dev stack is not disturbed.
export SWITCHYARD_FRONTEND_PORT=$(free_port) SWITCHYARD_PROMETHEUS_PORT=$(free_port) SWITCHYARD_REDIS_PORT=$(free_port)

stage=$(mktemp -d)
cleanup() {
	status=$?
	if [ $status -ne 0 ]; then
		log "FAILED; container logs:"
		# shellcheck disable=SC2086 # services is a list of names
		"${compose[@]}" logs --no-color --tail=60 $services || true
	fi
	log "tearing down $project"
	"${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
	rm -rf "$stage"
	exit $status
}
trap cleanup EXIT

image() { # image <dockerfile> <tag> <context> [build args...]
	local out
	if ! out=$(docker build -f "$1" -t "$2" "${@:4}" "$3" 2>&1); then
		echo "$out" >&2
		fail "docker build of $2 failed"
	fi
}

for bin in $binaries; do
	ctx="$stage/$bin"
	mkdir -p "$ctx/state"
	log "building $bin on the host"
	(cd "services/$bin" && CGO_ENABLED=0 go build -o "$ctx/switchyard" .)
	cp deploy/docker/passwd deploy/docker/group "$ctx/"
	log "image switchyard/$bin:ci (FROM scratch)"
	image deploy/docker/Dockerfile.local "switchyard/$bin:ci" "$ctx" --build-arg "BINARY=$bin"
done

# pack_host <image name> <host program> <path in image>: a FROM-scratch image
# holding a host program and the shared libraries it links.
pack_host() {
	local name=$1 program=$2 target=$3 ctx="$stage/host-$1"
	[ -x "$program" ] || fail "$program not found (apt-get install the package that provides it)"
	mkdir -p "$ctx/rootfs/etc" "$ctx/rootfs$(dirname "$target")" "$ctx/state"
	cp -L "$program" "$ctx/rootfs$target"
	cp deploy/docker/passwd deploy/docker/group "$ctx/rootfs/etc/"
	# Every library ldd resolves, plus the dynamic loader.
	ldd "$program" | awk '/=> \// {print $3} /^[ \t]*\/.*ld-linux/ {print $1}' | while read -r lib; do
		mkdir -p "$ctx/rootfs$(dirname "$lib")"
		cp -L "$lib" "$ctx/rootfs$lib"
	done
	log "image switchyard/$name:ci (FROM scratch, $program from the host)"
	image deploy/docker/Dockerfile.hostpkg "switchyard/$name:ci" "$ctx"
}
if has prometheus; then pack_host prometheus /usr/bin/prometheus /usr/bin/prometheus; fi
if has redis; then pack_host redis "$(readlink -f /usr/bin/redis-server)" /usr/bin/redis-server; fi

log "starting: $services"
# shellcheck disable=SC2086 # services is a list of names
"${compose[@]}" up -d --no-build $services

# wait_for <what> <command...>: retry the command until it succeeds.
wait_for() {
	local what=$1
	shift
	local deadline=$((SECONDS + timeout))
	until "$@"; do
		[ $SECONDS -lt $deadline ] || { "${compose[@]}" ps >&2 || true; fail "$what: not within ${timeout}s"; }
		sleep 1
	done
}

url="http://127.0.0.1:$SWITCHYARD_FRONTEND_PORT/api/users/42"
log "waiting for $url"
wait_for "frontend answering $url" curl -fsS --max-time 5 -o "$stage/page.json" "$url"
log "frontend answered: $(cat "$stage/page.json")"
python3 - "$stage/page.json" <<'PY'
import json, sys
page = json.load(open(sys.argv[1]))
problems = []
if page.get("user", {}).get("id") != 42: problems.append("user.id is not 42")
if not page.get("user", {}).get("served_by", "").startswith("users-"): problems.append("user not served by users")
if not page.get("served_by", "").startswith("frontend-"): problems.append("no frontend served_by")
if not page.get("orders_served_by", "").startswith("orders-"): problems.append("orders not served by orders")
orders = page.get("orders") or []
if not orders: problems.append("no orders")
for o in orders:
    if not o.get("invoice", {}).get("served_by", "").startswith("billing-"): problems.append(f"order {o.get('id')} has no invoice from billing")
if problems:
    sys.exit("compose-test: bad answer: " + "; ".join(problems))
PY

for svc in frontend users orders billing; do
	has "$svc" || continue
	id=$("${compose[@]}" ps -q "$svc")
	user=$(docker inspect -f '{{.Config.User}}' "$id")
	[ "$user" = "65532:65532" ] || fail "$svc runs as '$user', want 65532:65532"
done

if has prometheus; then
	prom="http://127.0.0.1:$SWITCHYARD_PROMETHEUS_PORT"
	# shop_targets_up: every shop target is up (Prometheus scrapes every 10s).
	shop_targets_up() {
		curl -fsS --max-time 5 "$prom/api/v1/targets?state=active" 2>/dev/null | python3 -c '
import json, sys
ts = [t for t in json.load(sys.stdin)["data"]["activeTargets"] if t["labels"]["job"] == "shop"]
sys.exit(0 if len(ts) == 4 and all(t["health"] == "up" for t in ts) else 1)'
	}
	log "waiting for Prometheus to scrape the four shop apps"
	wait_for "prometheus: every shop target up" shop_targets_up
	groups=$(curl -fsS "$prom/api/v1/rules" | python3 -c 'import json,sys; print(" ".join(sorted(g["name"] for g in json.load(sys.stdin)["data"]["groups"])))')
	log "prometheus loaded rule groups: $groups"
	[[ " $groups " == *" shop "* ]] || fail "prometheus did not load the shop rule group (have: $groups)"
	shop_metric_seen() {
		curl -fsS --max-time 5 "$prom/api/v1/query" --data-urlencode 'query=switchyard_shop_http_requests_total{app="frontend",code="200"}' 2>/dev/null |
			python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["data"]["result"] else 1)'
	}
	wait_for "prometheus: the frontend's request counter" shop_metric_seen
	log "prometheus has switchyard_shop_http_requests_total for the frontend"
fi

if has redis; then
	redis_pong() { [ "$(redis-cli -h 127.0.0.1 -p "$SWITCHYARD_REDIS_PORT" ping 2>/dev/null)" = PONG ]; }
	if command -v redis-cli >/dev/null; then
		wait_for "redis answering PING" redis_pong
		log "redis answers PING"
	fi
fi

log "OK: $services up through compose from FROM-scratch images, non-root"
