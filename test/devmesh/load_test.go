package devmesh

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestDevMeshLoad measures the shop's page (GET /api/users/42: frontend →
// users, orders → billing) at a constant arrival rate, first through the
// whole dev mesh (every hop through two sidecars with mTLS), then with the
// same four shop apps calling each other directly — same machine, same
// minute — and reports latency, errors, CPU and RSS of the processes.
// Opt-in (SWITCHYARD_BENCH=1); SWITCHYARD_BENCH_RATE (default 100/s) and
// SWITCHYARD_BENCH_SECONDS (default 15) set the load, SWITCHYARD_BENCH_OUT
// a file for the table. Figures are in BENCHMARKS.md.
func TestDevMeshLoad(t *testing.T) {
	if os.Getenv("SWITCHYARD_BENCH") != "1" {
		t.Skip("set SWITCHYARD_BENCH=1 to measure the shop through the dev mesh")
	}
	rate := envInt(t, "SWITCHYARD_BENCH_RATE", 100)
	seconds := envInt(t, "SWITCHYARD_BENCH_SECONDS", 15)
	p := loadPlan(t)
	work, binDir := prepare(t, p)

	var rows []string
	measure := func(label, planFile string, pl plan) {
		dev, children := startPlan(t, work, binDir, planFile, pl)
		if _, err := getPageRetry(20 * time.Second); err != nil {
			t.Fatalf("%s: shop not answering: %v", label, err)
		}
		runLoad(rate, 2*time.Second) // warm-up: connections and TLS sessions between sidecars
		idle := cpuTicks(children)
		time.Sleep(5 * time.Second)
		idleTicks := sumTicks(cpuTicks(children), idle)
		before := cpuTicks(children)
		res := runLoad(rate, time.Duration(seconds)*time.Second)
		used := cpuTicks(children)
		rss := rssKB(children)
		byName := map[string]float64{}
		for pid, ticks := range used {
			byName[pid.name] += float64(ticks-before[pid]) / 100 / float64(seconds)
		}
		var parts []string
		for _, name := range slices.Sorted(maps.Keys(byName)) {
			parts = append(parts, fmt.Sprintf("%s %.2f", name, byName[name]))
		}
		total := float64(sumTicks(used, before)) / 100 / float64(seconds)
		row := fmt.Sprintf("| %s | %d/s × %ds | %d | %d | %s | %s | %s | %s | %.2f cores (%s) | %.2f cores | %d MB |",
			label, rate, seconds, res.n, res.errors, ms(res.q(.5)), ms(res.q(.9)), ms(res.q(.99)), ms(res.max),
			total, strings.Join(parts, ", "), float64(idleTicks)/100/5, rss/1024)
		t.Log(row)
		rows = append(rows, row)
		stopPlan(t, dev, children)
	}

	measure("through the dev mesh (4 sidecars, mTLS)", "deploy/dev/mesh.yaml", p)

	// The same apps calling each other directly: the plan's shop entries
	// with their upstreams pointed at the apps' own ports.
	direct := plan{StateDir: p.StateDir}
	appPort := map[string]string{"users": "8091", "orders": "8092", "billing": "8093"}
	for _, proc := range p.Processes {
		if proc.Binary != "shop" {
			continue
		}
		args := slices.Clone(proc.Args)
		for i := 0; i+1 < len(args); i++ {
			if svc, ok := strings.CutPrefix(args[i], "-upstreams."); ok {
				args[i+1] = "http://127.0.0.1:" + appPort[svc]
			}
		}
		proc.Args = args
		direct.Processes = append(direct.Processes, proc)
	}
	data, err := yaml.Marshal(map[string]any{"state_dir": direct.StateDir, "processes": direct.Processes})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "direct.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	measure("shop apps direct (no mesh)", "direct.yaml", direct)

	table := "| path | load | requests | errors | p50 | p90 | p99 | max | CPU of the processes under load | CPU idle | RSS total |\n|---|---|---|---|---|---|---|---|---|---|---|\n" +
		strings.Join(rows, "\n") + "\n"
	t.Logf("\n%s", table)
	if out := os.Getenv("SWITCHYARD_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type loadResult struct {
	n, errors int
	lat       []time.Duration
	max       time.Duration
}

func (r loadResult) q(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[int(p*float64(len(r.lat)-1))]
}

// runLoad sends GET shopURL at a constant rate, each request at its due
// time whatever the others do (open loop), and counts latency from the due
// time, so a stall is not hidden (no coordinated omission).
func runLoad(rate int, d time.Duration) loadResult {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 512}}
	defer client.CloseIdleConnections()
	n := int(d.Seconds() * float64(rate))
	var (
		mu  sync.Mutex
		res loadResult
		wg  sync.WaitGroup
	)
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
		time.Sleep(time.Until(due))
		wg.Go(func() {
			resp, err := client.Get(shopURL)
			ok := err == nil && resp.StatusCode == http.StatusOK
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			lat := time.Since(due)
			mu.Lock()
			res.lat = append(res.lat, lat)
			if !ok {
				res.errors++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(res.lat)
	res.n = len(res.lat)
	if res.n > 0 {
		res.max = res.lat[res.n-1]
	}
	return res
}

func getPageRetry(timeout time.Duration) (page, error) {
	deadline := time.Now().Add(timeout)
	for {
		pg, err := getPage()
		if err == nil || time.Now().After(deadline) {
			return pg, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cpuTicks reads utime+stime (clock ticks, USER_HZ = 100 on Linux) of each process.
func cpuTicks(procs []proc) map[proc]int64 {
	out := map[proc]int64{}
	for _, p := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+1:])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[p] = ut + st
	}
	return out
}

func sumTicks(after, before map[proc]int64) int64 {
	var sum int64
	for p, v := range after {
		sum += v - before[p]
	}
	return sum
}

// rssKB sums VmRSS of the processes.
func rssKB(procs []proc) int64 {
	var sum int64
	for _, p := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				sum += kb
			}
		}
	}
	return sum
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func envInt(t *testing.T, key string, def int) int {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", key, v)
	}
	return n
}
