package sidecar_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/test/harness"
	"github.com/switchyard-mesh/switchyard/test/sidecar/paired"
)

// TestBenchmarkSidecarPair measures what a client+server sidecar pair with
// mTLS adds to a request, side by side in one run with the same backend
// called directly and through an nginx mTLS pair (the C reference), at a
// constant 1,000 rps of 1 KB responses; then CPU and RSS per sidecar and
// the maximum throughput through one pair. The targets are measured
// interleaved (direct, sidecar pair, nginx pair with a worker per core
// and with one worker per proxy) for several rounds, so a
// burst of load from elsewhere on a shared host hits all of them alike;
// the table gives every round and the median of the rounds.
//
// Set SWITCHYARD_BENCH=1 to run (about three minutes);
// SWITCHYARD_BENCH_SECONDS (default 15) is the measuring time per target
// and round, SWITCHYARD_BENCH_ROUNDS (default 3) the number of rounds,
// SWITCHYARD_BENCH_OUT a file for the report, SWITCHYARD_BENCH_PPROF an
// existing directory for CPU profiles and execution traces (up to 5 s) of
// both sidecars (first round), the requests of that round
// (requests.csv, for tracestat -requests) and their heap and allocation
// profiles after the run, SWITCHYARD_BENCH_SIDECAR_FLAGS
// extra sidecar flags (e.g. "-gc_percent 50").
func TestBenchmarkSidecarPair(t *testing.T) {
	if os.Getenv("SWITCHYARD_BENCH") == "" {
		t.Skip("set SWITCHYARD_BENCH=1 to measure")
	}
	secs, rounds := envInt("SWITCHYARD_BENCH_SECONDS", 15), envInt("SWITCHYARD_BENCH_ROUNDS", 3)
	pprofDir := os.Getenv("SWITCHYARD_BENCH_PPROF")
	if pprofDir != "" {
		if err := os.MkdirAll(pprofDir, 0o755); err != nil {
			t.Fatalf("SWITCHYARD_BENCH_PPROF: %v", err)
		}
	}
	m := startMesh(t)
	payload := strings.Repeat("x", 1024)
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, payload)
	})}
	go func() { _ = app.Serve(appLn) }()
	t.Cleanup(func() { app.Close() })
	appPort := appLn.Addr().(*net.TCPAddr).Port

	flags := strings.Fields(os.Getenv("SWITCHYARD_BENCH_SIDECAR_FLAGS"))
	server := m.startSidecar(t, "users", "users-bench", appPort, flags...)
	clientSide := m.startSidecar(t, "frontend", "frontend-bench", 0, flags...)
	harness.Poll(t, 30*time.Second, func() error {
		if n := hosts(t, clientSide.admin, "users"); n != 1 {
			return fmt.Errorf("users endpoints %d", n)
		}
		return nil
	})
	nginxAddr, nginxPIDs := startNginxPair(t, appPort, "auto")
	nginx1Addr, nginx1PIDs := startNginxPair(t, appPort, "1")

	type target struct {
		name, addr, host string
		pids             [2]int    // proxies whose CPU is measured
		admins           [2]string // Go proxies whose collections are counted
		runs             []benchRun
	}
	targets := []*target{
		{name: "direct", addr: appLn.Addr().String(), host: "users"},
		{name: "sidecar pair (mTLS)", addr: clientSide.outbound, host: "users", pids: [2]int{clientSide.proc.PID(), server.proc.PID()},
			admins: [2]string{clientSide.admin, server.admin}},
	}
	if nginxAddr != "" {
		targets = append(targets, &target{name: "nginx pair (mTLS)", addr: nginxAddr, host: "users", pids: nginxPIDs},
			// One worker per proxy: the sidecar's budget (concurrency 1).
			&target{name: "nginx pair, 1 worker", addr: nginx1Addr, host: "users", pids: nginx1PIDs})
	}
	// 16 keep-alive connections take turns, each 16 ms apart: a request
	// waits for the one before it on its connection only past that.
	const rps, loadConns = 1000, 16
	load0 := loadAvg()
	for _, tg := range targets {
		// Warm up pools and TLS sessions.
		if _, _, err := newH1Load(tg.addr, tg.host, loadConns).constant(rps, 2*time.Second); err != nil {
			t.Fatalf("%s: %v", tg.name, err)
		}
	}
	for round := range rounds {
		for _, tg := range targets {
			profiling := pprofDir != "" && round == 0 && tg == targets[1]
			var wg sync.WaitGroup
			if profiling {
				for name, admin := range map[string]string{"client": clientSide.admin, "server": server.admin} {
					wg.Go(func() {
						fetchProfile(admin, fmt.Sprintf("profile?seconds=%d", max(1, secs-2)), filepath.Join(pprofDir, name+".pprof"))
					})
					wg.Go(func() {
						fetchProfile(admin, fmt.Sprintf("trace?seconds=%d", min(5, max(1, secs-2))), filepath.Join(pprofDir, name+".trace"))
					})
				}
			}
			var cpu0, user0, gc0, conns0 [2]float64
			var cs0, pre0 [2]int
			for i, pid := range tg.pids {
				if pid != 0 {
					cpu0[i], user0[i], cs0[i], pre0[i] = treeUsage(t, pid)
				}
				if tg.admins[i] != "" {
					gc0[i], conns0[i] = gcCycles(tg.admins[i]), upstreamConnsOpened(tg.admins[i])
				}
			}
			load := newH1Load(tg.addr, tg.host, loadConns)
			if profiling {
				f, err := os.Create(filepath.Join(pprofDir, "requests.csv"))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				load.timeline = f
			}
			lat, errs, err := load.constant(rps, time.Duration(secs)*time.Second)
			if err != nil {
				t.Logf("%s, round %d: %d failed, first: %v", tg.name, round+1, errs, err)
			}
			r := benchRun{errs: errs, p50: quantile(lat, 0.5), p90: quantile(lat, 0.9), p99: quantile(lat, 0.99), p999: quantile(lat, 0.999)}
			for i, pid := range tg.pids {
				if pid != 0 {
					cpu, user, cs, pre := treeUsage(t, pid)
					r.cpu[i] = (cpu - cpu0[i]) / float64(secs) * 1000 / rps
					r.user[i] = (user - user0[i]) / float64(secs) * 1000 / rps
					r.switches[i] = float64(cs-cs0[i]) / float64(secs*rps)
					r.preempted[i] = float64(pre-pre0[i]) / float64(secs*rps) * 1000
				}
				if tg.admins[i] != "" {
					r.gc[i] = (gcCycles(tg.admins[i]) - gc0[i]) / float64(secs)
					r.dials[i] = upstreamConnsOpened(tg.admins[i]) - conns0[i]
				}
			}
			tg.runs = append(tg.runs, r)
			wg.Wait()
		}
	}
	load1 := loadAvg()
	gc := medianRun(targets[1].runs).gc
	gcLine := fmt.Sprintf("sidecar GC cycles per second at %d rps (median of rounds): client %.1f, server %.1f", rps, gc[0], gc[1])
	var dials [2]float64
	for _, r := range targets[1].runs {
		dials[0], dials[1] = dials[0]+r.dials[0], dials[1]+r.dials[1]
	}
	gcLine += fmt.Sprintf("\nupstream connections the sidecars opened during the %d rps rounds (after warm-up): client %.0f, server %.0f", rps, dials[0], dials[1])
	steadyRSS := fmt.Sprintf("client sidecar %s, server sidecar %s", rss(t, clientSide.proc.PID()), rss(t, server.proc.PID()))

	var report strings.Builder
	fmt.Fprintf(&report, "constant %d rps over %d keep-alive connections (h1Load), 1 KB responses, %ds per target per round, %d interleaved rounds, load generator on the same host\n", rps, loadConns, secs, rounds)
	fmt.Fprintf(&report, "load average before: %s, after: %s\n", load0, load1)
	fmt.Fprintf(&report, "%-22s %-6s %9s %9s %9s %9s %6s %10s %10s %12s %12s %12s\n", "target", "round", "p50", "p90", "p99", "p99.9", "errors", "added p50", "added p99", "vCPU/1k rps", "switches/req", "preempt/1k")
	direct := targets[0]
	for _, tg := range targets {
		rows := append([]benchRun(nil), tg.runs...)
		rows = append(rows, medianRun(tg.runs))
		for i, r := range rows {
			label := strconv.Itoa(i + 1)
			base := direct.runs[min(i, len(direct.runs)-1)]
			if i == len(tg.runs) {
				label, base = "median", medianRun(direct.runs)
			}
			line := fmt.Sprintf("%-22s %-6s %9s %9s %9s %9s %6d", tg.name, label, paired.Ms(r.p50), paired.Ms(r.p90), paired.Ms(r.p99), paired.Ms(r.p999), r.errs)
			if tg != direct {
				line += fmt.Sprintf(" %10s %10s   %.3f/%.3f   %.1f/%.1f   %5.1f/%.1f", paired.SignedMs(r.p50-base.p50), paired.SignedMs(r.p99-base.p99), r.cpu[0], r.cpu[1], r.switches[0], r.switches[1], r.preempted[0], r.preempted[1])
			}
			fmt.Fprintln(&report, line)
		}
	}
	fmt.Fprintf(&report, "(added = minus direct in the same round; vCPU per 1,000 rps, OS context switches per request and, of those, involuntary ones (the OS took the core away) per 1,000 requests: client-side/server-side proxy)\n")
	// Rounds are paired: the sidecar pair's figure minus each reference's
	// in the same round takes out what the machine did to both.
	pairedLines := func(what string, figure func(benchRun) time.Duration) {
		for _, ref := range targets[2:] {
			diffs := make([]time.Duration, len(ref.runs))
			for i, r := range ref.runs {
				diffs[i] = figure(targets[1].runs[i]) - figure(r)
			}
			fmt.Fprintf(&report, "%s, sidecar pair minus %s in the same round: %s\n", what, ref.name, paired.Summarize(diffs, 0.95))
		}
	}
	pairedLines("paired p99", func(r benchRun) time.Duration { return r.p99 })
	// CPU as milliseconds per request, both proxies together.
	pairedLines("paired CPU per request (both proxies)", func(r benchRun) time.Duration {
		return time.Duration((r.cpu[0] + r.cpu[1]) * float64(time.Millisecond))
	})
	fmt.Fprintf(&report, "CPU per request, user + system (ms, medians of rounds, system = the rest of the median CPU; client/server proxy):")
	for _, tg := range targets[1:] {
		m := medianRun(tg.runs)
		fmt.Fprintf(&report, " %s %.3f+%.3f / %.3f+%.3f;", tg.name, m.user[0], m.cpu[0]-m.user[0], m.user[1], m.cpu[1]-m.user[1])
	}
	fmt.Fprintln(&report)
	fmt.Fprintf(&report, "RSS after the %d rps rounds: %s\n%s\n", rps, steadyRSS, gcLine)
	fmt.Fprintf(&report, "maximum throughput, 32 concurrent keep-alive clients, 5s (CPU per request of the client/server proxy at that rate):\n")
	const maxSecs = 5
	for _, tg := range targets {
		var cpu0 [2]float64
		for i, pid := range tg.pids {
			if pid != 0 {
				cpu0[i], _, _, _ = treeUsage(t, pid)
			}
		}
		rate, err := newH1Load(tg.addr, tg.host, 32).closed(maxSecs * time.Second)
		if err != nil {
			t.Logf("%s, maximum throughput: %v", tg.name, err)
		}
		line := fmt.Sprintf("  %-22s %8.0f rps", tg.name, rate)
		if tg.pids[0] != 0 && rate > 0 {
			var perRequest [2]float64
			for i, pid := range tg.pids {
				cpu, _, _, _ := treeUsage(t, pid)
				perRequest[i] = (cpu - cpu0[i]) * 1000 / (rate * maxSecs)
			}
			line += fmt.Sprintf("   %.3f/%.3f ms CPU per request", perRequest[0], perRequest[1])
		}
		fmt.Fprintln(&report, line)
	}
	fmt.Fprintf(&report, "RSS after the maximum-throughput runs: client sidecar %s, server sidecar %s\n", rss(t, clientSide.proc.PID()), rss(t, server.proc.PID()))
	for name, sc := range map[string]*sidecarProc{"client": clientSide, "server": server} {
		// Upstream resets are logged one line each; show how many and the first.
		var resets []string
		for _, l := range strings.Split(sc.proc.Log(), "\n") {
			if strings.Contains(l, "upstream reset") {
				resets = append(resets, l)
			}
		}
		if len(resets) > 0 {
			fmt.Fprintf(&report, "%s sidecar logged %d upstream resets, first: %s\n", name, len(resets), resets[0])
		}
	}
	if pprofDir != "" {
		for name, admin := range map[string]string{"client": clientSide.admin, "server": server.admin} {
			fetchProfile(admin, "heap", filepath.Join(pprofDir, name+"-heap.pprof"))
			fetchProfile(admin, "allocs", filepath.Join(pprofDir, name+"-allocs.pprof"))
		}
	}
	t.Log("\n" + report.String())
	if out := os.Getenv("SWITCHYARD_BENCH_OUT"); out != "" {
		_ = os.WriteFile(out, []byte(report.String()), 0o644)
	}
}

// benchRun is one target's figures in one round.
type benchRun struct {
	p50, p90, p99, p999 time.Duration
	errs                int
	cpu                 [2]float64 // vCPU per 1,000 rps of the client- and server-side proxy
	user                [2]float64 // of that, in user space
	switches            [2]float64 // OS context switches per request of each proxy
	preempted           [2]float64 // of those, involuntary (the OS took the core away), per 1,000 requests
	gc                  [2]float64 // collections per second of each (Go) proxy
	dials               [2]float64 // upstream connections each (Go) proxy opened
}

// medianRun takes the median of each figure over the rounds separately.
func medianRun(runs []benchRun) benchRun {
	med := func(f func(benchRun) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		return paired.Median(v)
	}
	d := func(f func(benchRun) time.Duration) time.Duration {
		return time.Duration(med(func(r benchRun) float64 { return float64(f(r)) }))
	}
	var m benchRun
	m.p50 = d(func(r benchRun) time.Duration { return r.p50 })
	m.p90 = d(func(r benchRun) time.Duration { return r.p90 })
	m.p99 = d(func(r benchRun) time.Duration { return r.p99 })
	m.p999 = d(func(r benchRun) time.Duration { return r.p999 })
	m.errs = int(med(func(r benchRun) float64 { return float64(r.errs) }))
	m.cpu[0] = med(func(r benchRun) float64 { return r.cpu[0] })
	m.cpu[1] = med(func(r benchRun) float64 { return r.cpu[1] })
	m.user[0] = med(func(r benchRun) float64 { return r.user[0] })
	m.user[1] = med(func(r benchRun) float64 { return r.user[1] })
	m.switches[0] = med(func(r benchRun) float64 { return r.switches[0] })
	m.switches[1] = med(func(r benchRun) float64 { return r.switches[1] })
	m.preempted[0] = med(func(r benchRun) float64 { return r.preempted[0] })
	m.preempted[1] = med(func(r benchRun) float64 { return r.preempted[1] })
	m.gc[0] = med(func(r benchRun) float64 { return r.gc[0] })
	m.gc[1] = med(func(r benchRun) float64 { return r.gc[1] })
	return m
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// gcCycles is a Go process's go_gc_duration_seconds_count from its admin
// port's /metrics; -1 when it cannot be read.
func gcCycles(admin string) float64 {
	return metricSum(admin, "go_gc_duration_seconds_count ")
}

// upstreamConnsOpened counts the TCP connections a sidecar has opened to
// its upstreams, over all clusters.
func upstreamConnsOpened(admin string) float64 {
	return metricSum(admin, `switchyard_sidecar_upstream_connections_total{`, `result="opened"`)
}

// metricSum adds up the samples on a sidecar's /metrics whose lines start
// with prefix and contain every one of labels; -1 if it cannot be read.
func metricSum(admin, prefix string, labels ...string) float64 {
	metrics, err := scrape(admin)
	if err != nil {
		return -1
	}
	sum := 0.0
	for _, l := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(l, prefix) || slices.ContainsFunc(labels, func(s string) bool { return !strings.Contains(l, s) }) {
			continue
		}
		n, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		sum += n
	}
	return sum
}

// fetchProfile saves /debug/pprof/<what> of a sidecar's admin port.
func fetchProfile(admin, what, file string) {
	resp, err := http.Get("http://" + admin + "/debug/pprof/" + what)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_ = os.WriteFile(file, b, 0o644)
}

var benchClient = &http.Client{Timeout: 10 * time.Second}

// treeUsage is the CPU time (utime+stime, and utime alone) and the OS
// context switches (voluntary and not, over every thread) of pid and its
// direct children (nginx workers), from /proc: on a VM a sleep/wake-up
// pair costs more than most of the work of a request.
func treeUsage(t *testing.T, pid int) (cpuSeconds, userSeconds float64, switches, preempted int) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ppid, _ := strconv.Atoi(f[1])
		if p != pid && ppid != pid {
			continue
		}
		utime, _ := strconv.ParseFloat(f[11], 64)
		stime, _ := strconv.ParseFloat(f[12], 64)
		cpuSeconds += (utime + stime) / 100 // USER_HZ
		userSeconds += utime / 100
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", p))
		for _, task := range tasks {
			st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", p, task.Name()))
			for _, l := range strings.Split(string(st), "\n") {
				if k, v, ok := strings.Cut(l, ":"); ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
					n, _ := strconv.Atoi(strings.TrimSpace(v))
					switches += n
					if k == "nonvoluntary_ctxt_switches" {
						preempted += n
					}
				}
			}
		}
	}
	return cpuSeconds, userSeconds, switches, preempted
}

// rss is a process's resident set, split into anonymous memory (heap,
// stacks) and file-backed pages (the mapped binary).
func rss(t *testing.T, pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	kb := map[string]int{}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && strings.HasPrefix(f[0], "Rss") || strings.HasPrefix(l, "VmRSS:") {
			kb[strings.TrimSuffix(f[0], ":")], _ = strconv.Atoi(f[1])
		}
	}
	mb := func(k string) float64 { return float64(kb[k]) / 1024 }
	return fmt.Sprintf("%.1f MB (anon %.1f, file %.1f)", mb("VmRSS"), mb("RssAnon"), mb("RssFile")+mb("RssShmem"))
}

// startNginxPair runs two nginx processes doing the same hop as the sidecar
// pair: plain HTTP in, mTLS (TLS 1.3, client certificate verified against a
// CA) between them, keep-alive pools both sides. It returns the client
// side's address and the client and server masters' PIDs, or "" when
// nginx is not installed. workers is worker_processes: "auto" (one per
// core, nginx's usual production setting) or a number.
func startNginxPair(t *testing.T, appPort int, workers string) (string, [2]int) {
	var pids [2]int
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Log("nginx not installed (apt-get install -y nginx): skipping the reference pair")
		return "", pids
	}
	dir := t.TempDir()
	writePKI(t, dir)
	clientAddr, serverAddr := harness.FreeAddr(t), harness.FreeAddr(t)
	common := func(name string) string {
		return fmt.Sprintf(`worker_processes %[3]s;
pid %[1]s/%[2]s.pid;
error_log %[1]s/%[2]s-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/%[2]s-body; proxy_temp_path %[1]s/%[2]s-proxy;
  fastcgi_temp_path %[1]s/%[2]s-fcgi; uwsgi_temp_path %[1]s/%[2]s-uwsgi; scgi_temp_path %[1]s/%[2]s-scgi;
`, dir, name, workers)
	}
	serverConf := common("server") + fmt.Sprintf(`  upstream app { server 127.0.0.1:%d; keepalive 256; }
  server {
    listen %s ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate %[3]s/server.pem; ssl_certificate_key %[3]s/server.key;
    ssl_client_certificate %[3]s/ca.pem; ssl_verify_client on;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`, appPort, serverAddr, dir)
	clientConf := common("client") + fmt.Sprintf(`  upstream mesh { server %s; keepalive 256; }
  server {
    listen %s;
    location / {
      proxy_pass https://mesh; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_ssl_protocols TLSv1.3; proxy_ssl_session_reuse on;
      proxy_ssl_certificate %[3]s/client.pem; proxy_ssl_certificate_key %[3]s/client.key;
      proxy_ssl_trusted_certificate %[3]s/ca.pem; proxy_ssl_verify on; proxy_ssl_name users;
    }
  }
}
`, serverAddr, clientAddr, dir)
	for i, name := range []string{"client", "server"} {
		conf := map[string]string{"server": serverConf, "client": clientConf}[name]
		path := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-p", dir, "-c", path, "-e", filepath.Join(dir, name+"-stderr.log"), "-g", "daemon off;")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pids[i] = cmd.Process.Pid
		// SIGTERM: the master stops its workers too (SIGKILL would orphan them).
		t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	}
	harness.Poll(t, 10*time.Second, func() error {
		req, _ := http.NewRequest("GET", "http://"+clientAddr+"/", nil)
		req.Host = "users"
		resp, err := benchClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := os.ReadFile(filepath.Join(dir, "client-error.log"))
			return fmt.Errorf("nginx pair: %s %s", resp.Status, b)
		}
		return nil
	})
	return clientAddr, pids
}

// writePKI writes a CA and SPIFFE-style server/client certificates as PEM.
func writePKI(t *testing.T, dir string) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench ca"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name string, der []byte, typ string) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", caDER, "CERTIFICATE")
	for i, name := range []string{"server", "client"} {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		u, _ := url.Parse(workloadID(map[string]string{"server": "users", "client": "frontend"}[name]))
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name}, DNSNames: []string{"users"}, URIs: []*url.URL{u},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
		write(name+".pem", der, "CERTIFICATE")
		kb, _ := x509.MarshalECPrivateKey(key)
		write(name+".key", kb, "EC PRIVATE KEY")
	}
}
