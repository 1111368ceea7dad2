#!/usr/bin/env bash
# The whole mesh in containers, on a Docker engine that cannot pull images:
#   1. build the Switchyard binaries on the host (static, CGO_ENABLED=0) and
#      pack each into a FROM-scratch image (deploy/docker/Dockerfile.local);
#   2. pack the host's Debian prometheus and redis-server, with the shared
#      libraries ldd lists, into FROM-scratch images (Dockerfile.hostpkg);
#   3. start the stack with compose.yaml + compose.ci.yaml: ca, registry x3,
#      controlplane, redis + ratelimit, the four sidecars with the four shop
#      apps in their network namespaces, prometheus (with the real
#      prometheus/ config and rules); grafana and jaeger need pulled images
#      and are left out;
#   4. check that
#      - frontend answers /api/users/42 with a composed user (users, orders,
#        billing invoices), each hop app -> sidecar -> mTLS -> sidecar -> app:
#        the callers' sidecars counted upstream 2xx, the callees' sidecars
#        counted inbound 2xx, the sidecar's config pins each peer's SPIFFE ID,
#        and a callee's inbound listener refuses plaintext and TLS without a
#        client certificate;
#      - the registry has a leader, every node is reachable, and the catalog
#        lists frontend, users, orders, billing and ratelimit as passing;
#      - Prometheus loaded the rules and scrapes every target of the stack up;
#      - redis answers PING;
#      - chaos: `docker kill` the registry leader, then the controlplane, while
#        a request loop keeps running: every request must succeed, the
#        registry elects a new leader and keeps the shop passing; the killed
#        registry node restarts and rejoins from its volume;
#   5. tear everything down, volumes included (also on failure, after
#      printing the logs).
# Usage: deploy/compose-test.sh        (from anywhere; make compose-test)
# Env:   COMPOSE_TEST_BINARIES  Switchyard binaries to image (default: all that compose runs)
#        COMPOSE_TEST_SERVICES  compose services to start (default: the whole mesh);
#                               checks of services not started are skipped
#        COMPOSE_TEST_BIN       directory of prebuilt static binaries to use
#                               instead of building (e.g. make build's ./bin)
#        COMPOSE_TEST_TIMEOUT   seconds to wait for each check (default: 120)
#        COMPOSE_TEST_CHAOS     0 skips the chaos step (default: 1)
#        COMPOSE_TEST_KEEP      1 leaves the stack running for inspection
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

mesh_services="ca registry-1 registry-2 registry-3 controlplane redis ratelimit
	sidecar-frontend sidecar-users sidecar-orders sidecar-billing
	frontend users orders billing prometheus"
binaries=${COMPOSE_TEST_BINARIES:-ca registry controlplane ratelimit sidecar shop}
services=$(echo ${COMPOSE_TEST_SERVICES:-$mesh_services})
timeout=${COMPOSE_TEST_TIMEOUT:-120}
chaos=${COMPOSE_TEST_CHAOS:-1}
project=switchyard-ci-$$
compose=(docker-compose -p "$project" -f compose.yaml -f compose.ci.yaml)
started=$SECONDS

log() { printf '== compose-test [%3ds]: %s\n' $((SECONDS - started)) "$*"; }
fail() { printf 'compose-test: FAIL: %s\n' "$*" >&2; exit 1; }
has() { [[ " $services " == *" $1 "* ]]; }

docker info >/dev/null 2>&1 || fail "docker engine not reachable (docker info failed)"
for tool in docker-compose curl python3; do
	command -v "$tool" >/dev/null || fail "$tool is not installed"
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Free host ports, so a running dev stack is not disturbed.
export SWITCHYARD_FRONTEND_PORT=$(free_port) SWITCHYARD_PROMETHEUS_PORT=$(free_port) SWITCHYARD_REDIS_PORT=$(free_port) \
	SWITCHYARD_REGISTRY_ADMIN_PORT=$(free_port) SWITCHYARD_SIDECAR_ADMIN_PORT=$(free_port)

stage=$(mktemp -d)
loader=
cleanup() {
	status=$?
	[ -z "$loader" ] || kill "$loader" 2>/dev/null || true
	if [ $status -ne 0 ]; then
		log "FAILED; container states and logs:"
		"${compose[@]}" ps || true
		# shellcheck disable=SC2086 # services is a list of names
		"${compose[@]}" logs --no-color --tail=40 $services || true
	fi
	if [ "${COMPOSE_TEST_KEEP:-0}" = 1 ]; then
		log "leaving $project running (COMPOSE_TEST_KEEP=1): ${compose[*]} down -v"
	else
		log "tearing down $project"
		"${compose[@]}" down -v --remove-orphans -t 3 >/dev/null 2>&1 || true
	fi
	rm -rf "$stage"
	log "finished with status $status"
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

image() { # image <dockerfile> <tag> <context> [build args...]
	local out
	if ! out=$(docker build -f "$1" -t "$2" "${@:4}" "$3" 2>&1); then
		echo "$out" >&2
		fail "docker build of $2 failed"
	fi
}

for bin in $binaries; do
	ctx="$stage/$bin"
	# state/trust: the trust-bundle volume's mount point, owned by 65532 in
	# the image so the ca can write the bundle there (see Dockerfile).
	mkdir -p "$ctx/state/trust"
	if [ -n "${COMPOSE_TEST_BIN:-}" ]; then
		[ -x "$COMPOSE_TEST_BIN/$bin" ] || fail "$COMPOSE_TEST_BIN/$bin not found"
		cp "$COMPOSE_TEST_BIN/$bin" "$ctx/switchyard"
	else
		log "building $bin on the host"
		(cd "services/$bin" && CGO_ENABLED=0 go build -trimpath -tags grpcnotrace -o "$ctx/switchyard" .) # flags as in the Makefile
	fi
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
if has redis; then pack_host redis /usr/bin/redis-server /usr/bin/redis-server; fi

log "starting: $services"
# shellcheck disable=SC2086 # services is a list of names
"${compose[@]}" up -d --no-build $services

# wait_for <what> <command...>: retry the command until it succeeds. A check
# may leave the reason it last failed in $stage/why.
wait_for() {
	local what=$1
	shift
	local deadline=$((SECONDS + timeout))
	rm -f "$stage/why"
	until "$@"; do
		if [ $SECONDS -ge $deadline ]; then
			fail "$what: not within ${timeout}s$([ -s "$stage/why" ] && printf ' (%s)' "$(cat "$stage/why")")"
		fi
		sleep 1
	done
}
# cid <service>: the service's container (docker ps by compose labels; much
# faster than docker-compose ps).
cid() {
	docker ps -aq --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=$1" | head -1
}
# ip_of <service>: the container's address on the compose network (reachable
# from a Linux host without publishing a port).
ip_of() {
	local id ip
	id=$(cid "$1")
	[ -n "$id" ] || return 1
	ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$id")
	[ -n "$ip" ] && echo "$ip"
}
# running <service>: the container is up (not exited or killed).
running() { [ "$(docker inspect -f '{{.State.Running}}' "$(cid "$1")" 2>/dev/null)" = true ]; }
# admin_ready <service> <port> [path]: the service's admin endpoint answers 200.
admin_ready() {
	local ip
	ip=$(ip_of "$1") || return 1
	curl -fsS --max-time 5 -o /dev/null "http://$ip:$2${3:-/readyz}" 2>/dev/null
}

# ------------------------------------------------------------ the shop answers
url="http://127.0.0.1:$SWITCHYARD_FRONTEND_PORT/api/users/42"
check_page() { # check_page <file>: a composed user, every part served by its own app
	python3 - "$1" <<'PY'
import json, sys
try:
    page = json.load(open(sys.argv[1]))
except ValueError as e:
    sys.exit(f"not JSON: {e}")
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
    sys.exit("bad answer: " + "; ".join(problems))
PY
}
composed() { curl -fsS --max-time 5 -o "$stage/page.json" "$url" 2>/dev/null && check_page "$stage/page.json" 2>/dev/null; }
if has frontend; then
	log "waiting for $url to answer a composed user"
	wait_for "frontend answering a composed user at $url" composed
	log "frontend answered: $(cat "$stage/page.json")"
	check_page "$stage/page.json" || fail "frontend's answer"
fi

for svc in ca registry-1 controlplane ratelimit sidecar-frontend frontend users orders billing; do
	has "$svc" || continue
	user=$(docker inspect -f '{{.Config.User}}' "$(cid "$svc")")
	[ "$user" = "65532:65532" ] || fail "$svc runs as '$user', want 65532:65532"
done

# -------------------------------------------------- through the sidecars, mTLS
# Each caller's sidecar counts the upstream 2xx to its peer's cluster, each
# callee's sidecar the 2xx its inbound (mTLS) listener served.
cat >"$stage/count.py" <<'PY'
# count.py <metric> <python condition over the labels l>: sum of the matching
# samples in the Prometheus text exposition on stdin.
import re, sys
metric, cond = sys.argv[1], sys.argv[2]
total = 0.0
for line in sys.stdin:
    m = re.match(r'^(\w+)\{(.*)\} (\S+)$', line.strip())
    if not m or m.group(1) != metric:
        continue
    l = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
    if eval(cond):
        total += float(m.group(3))
print(int(total))
PY
sidecar_count() { # sidecar_count <sidecar service> <metric> <condition over labels l>
	local ip
	ip=$(ip_of "$1") || return 1
	curl -fsS --max-time 5 "http://$ip:15000/metrics" 2>/dev/null | python3 "$stage/count.py" "$2" "$3"
}
if has sidecar-frontend && has sidecar-users && has sidecar-orders && has sidecar-billing; then
	for hop in "sidecar-frontend users" "sidecar-frontend orders" "sidecar-orders billing"; do
		set -- $hop
		n=$(sidecar_count "$1" switchyard_sidecar_upstream_requests_total "'$2' in l['cluster'] and l['code_class'] == '2xx'")
		[ "${n:-0}" -gt 0 ] || fail "$1 counted no 2xx upstream requests to $2 (switchyard_sidecar_upstream_requests_total)"
		log "$1 -> $2: $n upstream 2xx"
	done
	for callee in users orders billing; do
		n=$(sidecar_count "sidecar-$callee" switchyard_sidecar_downstream_requests_total "l['listener'].startswith('inbound') and l['code_class'] == '2xx'")
		[ "${n:-0}" -gt 0 ] || fail "sidecar-$callee served no 2xx on its inbound mTLS listener (switchyard_sidecar_downstream_requests_total)"
		log "sidecar-$callee inbound (mTLS, 15006): $n 2xx"
	done
	# The caller's config pins each peer's SPIFFE ID (the SAN it must present).
	ip=$(ip_of sidecar-frontend)
	curl -fsS --max-time 5 "http://$ip:15000/config_dump" -o "$stage/config_dump.json" || fail "sidecar-frontend /config_dump"
	for peer in users orders; do
		grep -q "spiffe://switchyard.local/ns/shop/sa/$peer" "$stage/config_dump.json" ||
			fail "sidecar-frontend's config_dump does not name spiffe://switchyard.local/ns/shop/sa/$peer"
	done
	log "sidecar-frontend's config pins spiffe://switchyard.local/ns/shop/sa/{users,orders}"
	# A callee's inbound listener takes mTLS only.
	ip=$(ip_of sidecar-users)
	# (Go's TLS server answers a plaintext request with a bare 400.)
	code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://$ip:15006/api/users/42" -H 'Host: users' 2>/dev/null || true)
	case $code in 2* | 3*) fail "sidecar-users:15006 answered plaintext HTTP with $code" ;; esac
	if curl -ksS --max-time 5 -o /dev/null "https://$ip:15006/api/users/42" -H 'Host: users' 2>/dev/null; then
		fail "sidecar-users:15006 answered TLS without a client certificate"
	fi
	log "sidecar-users:15006 refuses plaintext and TLS without a client certificate"
fi

# ----------------------------------------------------------------- registry
registry_status() { # registry_status <service>: its /v1/cluster/status JSON into $stage/status.json
	local ip
	ip=$(ip_of "$1") || return 1
	curl -fsS --max-time 5 "http://$ip:7102/v1/cluster/status" -o "$stage/status.json" 2>/dev/null
}
# registry_ok <service> <voters reachable>: a leader, enough reachable voters,
# the four shop services and ratelimit registered and passing.
registry_ok() {
	local ip
	registry_status "$1" || return 1
	ip=$(ip_of "$1") || return 1
	curl -fsS --max-time 5 "http://$ip:7102/v1/catalog/services" -o "$stage/services.json" 2>/dev/null || return 1
	python3 - "$stage/status.json" "$stage/services.json" "$2" <<'PY'
import json, sys
st, sv, want = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
if not st.get("leader_id"): sys.exit(1)
if sum(1 for p in st.get("peers", []) if p.get("reachable") and p.get("voter")) < want: sys.exit(1)
passing = {s["name"]: s.get("passing", 0) for s in sv.get("services", [])}
sys.exit(0 if all(passing.get(n, 0) >= 1 for n in ("frontend", "users", "orders", "billing", "ratelimit")) else 1)
PY
}
leader_service() { # leader_service <registry service>: the compose service of the current leader
	registry_status "$1" || return 1
	# The leader peer's Raft address is the advertised registry-N:7101.
	python3 -c '
import json, sys
st = json.load(open(sys.argv[1]))
print(next((p["raft_address"].rsplit(":", 1)[0] for p in st.get("peers", []) if p.get("leader")), ""))' "$stage/status.json"
}
if has registry-1 && has registry-2 && has registry-3; then
	log "waiting for the registry: a leader, 3 voters reachable, the shop passing"
	wait_for "registry: leader, 3 reachable voters, frontend/users/orders/billing/ratelimit passing" registry_ok registry-1 3
	log "registry: leader $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["leader_id"])' "$stage/status.json"), catalog: $(python3 -c '
import json, sys
print(", ".join("%s (%d passing)" % (s["name"], s.get("passing", 0)) for s in json.load(open(sys.argv[1]))["services"]))' "$stage/services.json")"
fi

# --------------------------------------------------------------- prometheus
if has prometheus; then
	prom="http://127.0.0.1:$SWITCHYARD_PROMETHEUS_PORT"
	# Jobs of services this run started (gateway and geodns do not exist yet;
	# jaeger has no CI image): every one of their targets must be up.
	want_jobs=""
	for pair in shop:frontend ca:ca registry:registry-1 controlplane:controlplane ratelimit:ratelimit sidecar:sidecar-frontend prometheus:prometheus; do
		has "${pair#*:}" && want_jobs="$want_jobs ${pair%%:*}"
	done
	targets_up() {
		curl -fsS --max-time 5 "$prom/api/v1/targets?state=active" -o "$stage/targets.json" 2>/dev/null || return 1
		python3 - "$stage/targets.json" $want_jobs <<'PY'
import json, sys
ts = json.load(open(sys.argv[1]))["data"]["activeTargets"]
want = sys.argv[2:]
mine = [t for t in ts if t["labels"]["job"] in want]
missing = [j for j in want if not any(t["labels"]["job"] == j for t in mine)]
down = [f'{t["labels"]["job"]}/{t["labels"]["instance"]}: {t.get("lastError") or t["health"]}' for t in mine if t["health"] != "up"]
open(sys.argv[1].rsplit("/", 1)[0] + "/why", "w").write("; ".join(down + [f"no job {j}" for j in missing]))
sys.exit(0 if mine and not down and not missing else 1)
PY
	}
	log "waiting for Prometheus to scrape every target of:$want_jobs"
	wait_for "prometheus: every target up" targets_up
	n=$(python3 -c 'import json,sys; ts=json.load(open(sys.argv[1]))["data"]["activeTargets"]; print(sum(t["health"]=="up" for t in ts))' "$stage/targets.json")
	log "prometheus: $n targets up (jobs:$want_jobs); not in this stack: $(python3 -c '
import json, sys
ts = json.load(open(sys.argv[1]))["data"]["activeTargets"]
print(", ".join(sorted({t["labels"]["job"] for t in ts if t["health"] != "up"})) or "none")' "$stage/targets.json")"
	groups=$(curl -fsS "$prom/api/v1/rules" | python3 -c 'import json,sys; print(" ".join(sorted(g["name"] for g in json.load(sys.stdin)["data"]["groups"])))')
	log "prometheus loaded rule groups: $groups"
	[[ " $groups " == *" shop "* ]] || fail "prometheus did not load the shop rule group (have: $groups)"
	# series <promql>: the query has a result.
	series() {
		curl -fsS --max-time 5 "$prom/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
			python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["data"]["result"] else 1)'
	}
	wait_for "prometheus: the frontend's request counter" series 'switchyard_shop_http_requests_total{app="frontend",code="200"} > 0'
	if has sidecar-users; then
		wait_for "prometheus: sidecar inbound 2xx" series 'switchyard_sidecar_downstream_requests_total{code_class="2xx"} > 0'
	fi
	log "prometheus has the shop's and the sidecars' request counters"
fi

if has redis && command -v redis-cli >/dev/null; then
	redis_pong() { [ "$(redis-cli -h 127.0.0.1 -p "$SWITCHYARD_REDIS_PORT" ping 2>/dev/null)" = PONG ]; }
	wait_for "redis answering PING" redis_pong
	log "redis answers PING"
fi
if has ratelimit; then
	wait_for "ratelimit ready" admin_ready ratelimit 6070
	log "ratelimit is ready"
fi

# -------------------------------------------------------------------- chaos
# load_start: a request loop against the frontend (about 10 requests/s, each
# answer checked like check_page), in the background; load_stop ends it and
# fails on any failed request.
cat >"$stage/load.py" <<'PY'
import json, signal, sys, time, urllib.request
url, out = sys.argv[1], sys.argv[2]
ok, failed, slowest, stop = 0, [], 0.0, False
def handle(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, handle)
while not stop:
    t = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            page = json.load(r)
        parts = [page["served_by"], page["user"]["served_by"], page["orders_served_by"]] + [o["invoice"]["served_by"] for o in page["orders"]]
        if not page["orders"] or [p.split("-")[0] for p in parts[:3]] != ["frontend", "users", "orders"] or not all(p.startswith("billing-") for p in parts[3:]):
            raise ValueError(f"not a composed user: {page}")
        ok += 1
    except Exception as e:  # noqa: BLE001 - every failure counts
        failed.append(f"{time.strftime('%T')} {e!r}")
    slowest = max(slowest, time.monotonic() - t)
    time.sleep(max(0.0, 0.1 - (time.monotonic() - t)))
json.dump({"ok": ok, "failed": failed, "slowest": slowest}, open(out, "w"))
PY
load_start() {
	rm -f "$stage/load.json"
	python3 "$stage/load.py" "$url" "$stage/load.json" &
	loader=$!
}
load_stop() { # load_stop <what>
	kill -TERM "$loader" 2>/dev/null || true
	wait "$loader" 2>/dev/null || true
	loader=
	[ -s "$stage/load.json" ] || fail "$1: the request loop left no result"
	local summary
	summary=$(python3 - "$stage/load.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{r['ok']} requests ok, {len(r['failed'])} failed, slowest {r['slowest']*1000:.0f} ms")
for f in r["failed"][:5]:
    print("   ", f, file=sys.stderr)
sys.exit(0 if r["ok"] > 0 and not r["failed"] else 1)
PY
	) || fail "$1: $summary"
	log "$1: $summary"
}

if [ "$chaos" = 1 ] && has frontend && has registry-1 && has registry-2 && has registry-3 && has controlplane; then
	victim=$(leader_service registry-1) || fail "registry: no leader address"
	[[ " registry-1 registry-2 registry-3 " == *" $victim "* ]] || fail "registry leader address names '$victim', not a registry service"
	survivor=registry-1
	[ "$victim" != registry-1 ] || survivor=registry-2
	log "chaos: requests running; docker kill $victim (the registry leader)"
	load_start
	sleep 2
	docker kill "$(cid "$victim")" >/dev/null
	# Well past the sidecars' registration TTL (10 s), counted from the new
	# leader's election: their heartbeats must move to a live node, or the
	# shop would turn critical and lose its routes.
	sleep 20
	running "$victim" && fail "$victim still running after docker kill"
	load_stop "registry leader $victim killed"
	wait_for "registry: new leader, 2 reachable voters, the shop still passing" registry_ok "$survivor" 2
	log "registry: new leader $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["leader_id"])' "$stage/status.json") after $victim was killed; the shop is still passing"

	log "chaos: requests running; docker kill controlplane (sidecars keep their last config)"
	load_start
	sleep 2
	docker kill "$(cid controlplane)" >/dev/null
	sleep 8
	load_stop "controlplane killed"

	log "restarting $victim and controlplane"
	"${compose[@]}" start "$victim" controlplane >/dev/null 2>&1
	wait_for "$victim rejoins: 3 reachable voters, the shop passing" registry_ok "$victim" 3
	wait_for "controlplane ready again" admin_ready controlplane 18001
	wait_for "frontend answering after the restarts" composed
	log "$victim rejoined from its volume, the controlplane is ready again, the frontend answers"
fi

# Nothing crashed on the way (restart: "no" in CI, so a crash stays visible).
for svc in $services; do
	running "$svc" || fail "$svc is not running at the end: $(docker inspect -f '{{.State.Status}} exit={{.State.ExitCode}}' "$(cid "$svc")" 2>/dev/null)"
done

log "OK: $(echo $services | wc -w) services up through compose from FROM-scratch images, non-root, in $((SECONDS - started))s"
