// Command tracestat summarizes a Go execution trace of a proxy under a
// constant load: how long goroutines run at a stretch (run slices), how
// long a goroutine made runnable waits for the one P, what the longest
// slices stopped on, and what ran while the longest waits waited. It is
// how the sidecar pair benchmark's tail was taken apart (BENCHMARKS.md);
// feed it the traces that SWITCHYARD_BENCH_PPROF saves:
//
//	go run ./sidecar/tracestat /tmp/prof/client.trace
//
// With -requests (the requests.csv saved beside the traces) it also puts
// the load generator's requests on the trace's clock and compares the
// requests at or above the p99 latency with all of them: what share of
// each overlapped one of the proxy's GC mark phases.
package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// slice is one stretch a goroutine ran for.
type slice struct {
	start, end trace.Time
	stop       string     // where it stopped running (top frames)
	inMark     bool       // began during a GC mark phase
	wait       trace.Time // how long it was runnable before it ran
}

func (s *slice) µs() float64 { return float64(s.end-s.start) / 1e3 }

const markPhase = "GC concurrent mark phase"

func main() {
	top := flag.Int("top", 20, "stop stacks to list")
	depth := flag.Int("depth", 6, "frames per stop stack")
	requests := flag.String("requests", "", "the benchmark's requests.csv, to set beside the mark phases")
	flag.Parse()
	if flag.NArg() != 1 {
		log.Fatal("usage: tracestat [-top n] [-depth n] [-requests requests.csv] file.trace")
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	tr, err := read(f, *depth)
	if err != nil {
		log.Fatalf("%s: %v", flag.Arg(0), err)
	}
	marks := make([]trace.Time, len(tr.marks))
	for i, m := range tr.marks {
		marks[i] = m.end - m.start
	}
	report(os.Stdout, tr.slices, marks, *top)
	if *requests != "" {
		if err := reportRequests(os.Stdout, *requests, tr); err != nil {
			log.Fatal(err)
		}
	}
}

// traced is what read takes from a trace.
type traced struct {
	slices      []*slice
	marks       []span // GC mark phases
	first, last trace.Time
	clock       *trace.ClockSnapshot // nil before Go 1.25
}

type span struct{ start, end trace.Time }

// wall is t on the wall clock, in Unix nanoseconds.
func (tr *traced) wall(t trace.Time) int64 {
	return tr.clock.Wall.UnixNano() + int64(t-tr.clock.Trace)
}

// reportRequests compares the requests at or above the p99 latency with
// all requests inside the trace: the share of each that overlapped a mark
// phase of this process.
func reportRequests(w io.Writer, path string, tr *traced) error {
	if tr.clock == nil {
		return errors.New("the trace has no clock snapshot (Go 1.25 or later writes one)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	from, to := tr.wall(tr.first), tr.wall(tr.last)
	type request struct{ start, end int64 }
	var reqs []request
	var lats []float64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var due, lat int64
		if _, err := fmt.Sscanf(line, "%d,%d", &due, &lat); err != nil {
			return fmt.Errorf("%s: %q: %w", path, line, err)
		}
		if due >= from && due+lat <= to {
			reqs = append(reqs, request{due, due + lat})
			lats = append(lats, float64(lat))
		}
	}
	if len(reqs) == 0 {
		return fmt.Errorf("%s: no request inside the trace's %s–%s", path, time.Unix(0, from).Format(time.StampMicro), time.Unix(0, to).Format(time.StampMicro))
	}
	p99 := quantile(slices.Clone(lats), .99)
	overlaps := func(r request) bool {
		for _, m := range tr.marks {
			if r.start < tr.wall(m.end) && tr.wall(m.start) < r.end {
				return true
			}
		}
		return false
	}
	var all, tail, tailN int
	for i, r := range reqs {
		o := overlaps(r)
		if o {
			all++
		}
		if lats[i] >= p99 {
			tailN++
			if o {
				tail++
			}
		}
	}
	fmt.Fprintf(w, "%d requests inside the trace, p99 %.2f ms: %.1f %% of all and %.1f %% of those ≥ p99 (%d of %d) overlapped a GC mark phase\n",
		len(reqs), p99/1e6, 100*float64(all)/float64(len(reqs)), 100*float64(tail)/float64(tailN), tail, tailN)

	// How busy this proxy was while each request was under way: a tail
	// request during which it mostly ran other work waited for it; one
	// during which it mostly did not run waited elsewhere (the OS, the
	// other proxy, the app, the load generator).
	var busyAll, busyTail []float64
	ranDuringTail := map[string]float64{}
	for i, r := range reqs {
		var busy float64
		for _, sl := range tr.slices {
			from, to := max(tr.wall(sl.start), r.start), min(tr.wall(sl.end), r.end)
			if from >= to {
				continue
			}
			busy += float64(to - from)
			if lats[i] >= p99 {
				ranDuringTail[sl.stop] += float64(to-from) / 1e6
			}
		}
		share := busy / float64(r.end-r.start)
		busyAll = append(busyAll, share)
		if lats[i] >= p99 {
			busyTail = append(busyTail, share)
		}
	}
	fmt.Fprintf(w, "share of a request's time this proxy ran goroutines: all requests p50 %.0f %% p90 %.0f %%; requests ≥ p99 p50 %.0f %% p90 %.0f %%\n",
		100*quantile(busyAll, .5), 100*quantile(busyAll, .9), 100*quantile(busyTail, .5), 100*quantile(busyTail, .9))
	fmt.Fprintf(w, "what it ran during the requests ≥ p99 (ms, by where the run stopped):\n")
	for _, k := range sortedKeys(ranDuringTail, func(v float64) float64 { return v })[:min(8, len(ranDuringTail))] {
		fmt.Fprintf(w, "%8.2f  %s\n", ranDuringTail[k], k)
	}
	return nil
}

// read collects every goroutine run slice, the GC mark phases and a
// clock snapshot.
func read(r io.Reader, depth int) (*traced, error) {
	rd, err := trace.NewReader(r)
	if err != nil {
		return nil, err
	}
	running := map[trace.GoID]*slice{}
	runnableAt := map[trace.GoID]trace.Time{}
	tr := &traced{}
	var inMark bool
	var markStart trace.Time
	for {
		ev, err := rd.ReadEvent()
		if err == io.EOF {
			return tr, nil
		}
		if err != nil {
			return nil, err
		}
		if tr.first == 0 {
			tr.first = ev.Time()
		}
		tr.last = ev.Time()
		switch ev.Kind() {
		case trace.EventSync:
			if c := ev.Sync().ClockSnapshot; c != nil && tr.clock == nil {
				tr.clock = c
			}
		case trace.EventRangeBegin:
			if ev.Range().Name == markPhase {
				inMark, markStart = true, ev.Time()
			}
		case trace.EventRangeEnd:
			if ev.Range().Name == markPhase && inMark {
				inMark = false
				tr.marks = append(tr.marks, span{markStart, ev.Time()})
			}
		case trace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind != trace.ResourceGoroutine {
				continue
			}
			g := st.Resource.Goroutine()
			from, to := st.Goroutine()
			switch to {
			case trace.GoRunnable:
				runnableAt[g] = ev.Time()
			case trace.GoRunning:
				s := &slice{start: ev.Time(), inMark: inMark}
				if t, ok := runnableAt[g]; ok {
					s.wait = ev.Time() - t
					delete(runnableAt, g)
				}
				running[g] = s
			}
			if from == trace.GoRunning {
				if s := running[g]; s != nil {
					s.end = ev.Time()
					s.stop = frames(st.Stack, depth)
					tr.slices = append(tr.slices, s)
					delete(running, g)
				}
			}
		}
	}
}

func frames(st trace.Stack, n int) string {
	var out []string
	for f := range st.Frames() {
		fn := f.Func
		if i := strings.LastIndex(fn, "/"); i >= 0 {
			fn = fn[i+1:]
		}
		out = append(out, fn)
		if len(out) == n {
			break
		}
	}
	if len(out) == 0 {
		return "(no stack)"
	}
	return strings.Join(out, " < ")
}

// quantile of v, which it sorts.
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[int(q*float64(len(v)-1))]
}

func report(w io.Writer, all []*slice, marks []trace.Time, top int) {
	runs := make([]float64, len(all))
	waits := make([]float64, len(all))
	for i, s := range all {
		runs[i], waits[i] = s.µs(), float64(s.wait)/1e3
	}
	fmt.Fprintf(w, "%d run slices; run µs p50 %.0f p90 %.0f p99 %.0f p99.9 %.0f; runnable wait µs p50 %.1f p90 %.1f p99 %.0f p99.9 %.0f\n",
		len(all), quantile(runs, .5), quantile(runs, .9), quantile(runs, .99), quantile(runs, .999),
		quantile(waits, .5), quantile(waits, .9), quantile(waits, .99), quantile(waits, .999))
	fmt.Fprintf(w, "%d GC mark phases:", len(marks))
	for _, m := range marks {
		fmt.Fprintf(w, " %.2f ms", float64(m)/1e6)
	}
	fmt.Fprintln(w)

	// The longest slices (≥ p99) by where they stopped.
	runP99 := quantile(runs, .99)
	type group struct {
		n, inMark int
		total     float64
	}
	groups := map[string]*group{}
	for _, s := range all {
		if s.µs() < runP99 {
			continue
		}
		g := groups[s.stop]
		if g == nil {
			g = &group{}
			groups[s.stop] = g
		}
		g.n++
		g.total += s.µs()
		if s.inMark {
			g.inMark++
		}
	}
	fmt.Fprintf(w, "run slices ≥ p99 (%.0f µs) by where they stopped:\n", runP99)
	for _, k := range sortedKeys(groups, func(g *group) float64 { return float64(g.n) })[:min(top, len(groups))] {
		g := groups[k]
		fmt.Fprintf(w, "%6d  mean %5.0f µs  %3d in a mark phase  %s\n", g.n, g.total/float64(g.n), g.inMark, k)
	}

	// The longest waits (≥ p99): what ran on the P while they waited.
	slices.SortFunc(all, func(a, b *slice) int { return cmp.Compare(a.start, b.start) })
	waitP99 := quantile(waits, .99)
	ranMeanwhile := map[string]float64{}
	for i, s := range all {
		if float64(s.wait)/1e3 < waitP99 {
			continue
		}
		from := s.start - s.wait
		for _, o := range all[:i] { // sorted by start: only earlier ones can overlap
			if o.end <= from {
				continue
			}
			ranMeanwhile[o.stop] += float64(min(o.end, s.start)-max(o.start, from)) / 1e3
		}
	}
	fmt.Fprintf(w, "waits ≥ p99 (%.0f µs): what ran meanwhile, µs in all, by where it stopped:\n", waitP99)
	for _, k := range sortedKeys(ranMeanwhile, func(v float64) float64 { return v })[:min(top, len(ranMeanwhile))] {
		fmt.Fprintf(w, "%9.0f  %s\n", ranMeanwhile[k], k)
	}
}

// sortedKeys are m's keys, largest by(value) first.
func sortedKeys[V any](m map[string]V, by func(V) float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Compare(by(m[b]), by(m[a])) })
	return keys
}
