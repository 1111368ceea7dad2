package server_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/server"
)

// pickNode returns a random running node.
func (c *cluster) pickNode(rng *rand.Rand) *node {
	for {
		nd := c.nodes[rng.IntN(len(c.nodes))]
		if nd.running() {
			return nd
		}
	}
}

// TestFailoverUnderWriteLoad kills the leader while clients register
// instances through every node, measures how long until a write is
// acknowledged again, and checks that no acknowledged registration is lost.
func TestFailoverUnderWriteLoad(t *testing.T) {
	c := newCluster(t, 3, nil)
	old := c.leader(10 * time.Second)
	var (
		mu    sync.Mutex
		acked []string
		kill  atomic.Int64 // unix nanos of the kill, 0 before
		first atomic.Int64 // first ack after the kill
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				start := time.Now().UnixNano()
				cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := c.pickNode(rng).client().Register(cctx, &registryv1.RegisterRequest{Instance: orders(id, 8080)})
				ccancel()
				if err != nil {
					continue
				}
				if k := kill.Load(); k != 0 && start > k {
					first.CompareAndSwap(0, time.Now().UnixNano())
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)
	kill.Store(time.Now().UnixNano())
	old.stop()
	waitFor(t, 10*time.Second, func() bool { return first.Load() != 0 })
	failover := time.Duration(first.Load() - kill.Load())
	time.Sleep(500 * time.Millisecond)
	cancel()
	wg.Wait()
	t.Logf("leader %s killed under write load: writes acknowledged again after %s (%d writes acknowledged in all)", old.id, failover.Round(time.Millisecond), len(acked))
	limit := time.Second
	if raceEnabled {
		limit = 3 * time.Second
	}
	if failover > limit {
		t.Errorf("failover took %s, want at most %s", failover, limit)
	}

	// Every acknowledged registration survived, and the killed node
	// rejoins with its data and catches up.
	leader := c.leader(5 * time.Second)
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	got, err := leader.client().GetService(rctx, &registryv1.GetServiceRequest{Service: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, in := range got.GetInstances() {
		have[in.GetId()] = true
	}
	for _, id := range acked {
		if !have[id] {
			t.Errorf("acknowledged registration %s lost", id)
		}
	}
	old.start()
	count := func(nd *node, stale bool) int {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
		defer ccancel()
		r, err := nd.client().GetService(cctx, &registryv1.GetServiceRequest{Service: "orders", Read: &registryv1.ReadOptions{Stale: stale}})
		if err != nil {
			return -1
		}
		return len(r.GetInstances())
	}
	// Writes abandoned by their clients at cancel may still commit, so
	// compare against a fresh linearizable read.
	waitFor(t, 10*time.Second, func() bool { return count(old, true) == count(leader, false) })
}

// Linearizability model: one register per instance ID holding its port (0
// when absent). Operations whose outcome is unknown (the call failed) may
// have taken effect or not.
type linInput struct {
	op   string // put, get, del
	key  string
	port uint32
}

type linOutput struct {
	port     uint32 // get: the port read
	notFound bool   // del: NotFound
	unknown  bool   // the call failed: outcome unknown
}

var linModel = porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range h {
			k := op.Input.(linInput).key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range byKey {
			out = append(out, ops)
		}
		return out
	},
	Init: func() []any { return []any{uint32(0)} },
	Step: func(state, input, output any) []any {
		s, in, out := state.(uint32), input.(linInput), output.(linOutput)
		switch in.op {
		case "put":
			if out.unknown {
				return []any{s, in.port}
			}
			return []any{in.port}
		case "del":
			switch {
			case out.unknown:
				return []any{s, uint32(0)}
			case out.notFound && s == 0, !out.notFound && s != 0:
				return []any{uint32(0)}
			}
			return nil
		default: // get
			if out.port == s {
				return []any{s}
			}
			return nil
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		return fmt.Sprintf("%s(%s,%d) -> %+v", in.op, in.key, in.port, out)
	},
}

// TestLinearizableAcrossLeaderKillsAndPartitions records every operation's
// call and return while leaders are killed and restarted and nodes are cut
// off, and checks the history with porcupine.
func TestLinearizableAcrossLeaderKillsAndPartitions(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.leader(10 * time.Second)
	keys := []string{"k0", "k1", "k2"}
	origin := time.Now()
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		port    atomic.Uint32
		failed  atomic.Int64
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			for ctx.Err() == nil {
				in := linInput{key: keys[rng.IntN(len(keys))]}
				switch r := rng.IntN(10); {
				case r < 4:
					in.op, in.port = "put", port.Add(1)
				case r < 5:
					in.op = "del"
				default:
					in.op = "get"
				}
				nd := c.pickNode(rng)
				call := time.Since(origin).Nanoseconds()
				out, err := doLinOp(nd, in)
				ret := time.Since(origin).Nanoseconds()
				if err != nil {
					failed.Add(1)
					time.Sleep(10 * time.Millisecond)
					if in.op == "get" || notApplied(err) {
						continue // no effect on the state
					}
					out, ret = linOutput{unknown: true}, -1
				}
				mu.Lock()
				history = append(history, porcupine.Operation{ClientId: w, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
				time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
			}
		}()
	}

	// Faults: three leader kills with restarts, then the leader cut off,
	// then a follower cut off.
	for range 3 {
		time.Sleep(800 * time.Millisecond)
		l := c.leader(10 * time.Second)
		t.Logf("killing leader %s", l.id)
		l.stop()
		time.Sleep(1200 * time.Millisecond)
		l.start()
	}
	time.Sleep(800 * time.Millisecond)
	l := c.leader(10 * time.Second)
	t.Logf("partitioning leader %s", l.id)
	l.net.setCut(true)
	time.Sleep(2 * time.Second)
	l.net.setCut(false)
	time.Sleep(800 * time.Millisecond)
	l = c.leader(10 * time.Second)
	f := c.followers(l)[0]
	t.Logf("partitioning follower %s", f.id)
	f.net.setCut(true)
	time.Sleep(2 * time.Second)
	f.net.setCut(false)
	time.Sleep(800 * time.Millisecond)
	cancel()
	wg.Wait()

	end := time.Since(origin).Nanoseconds() + 1
	for i := range history {
		if history[i].Return < 0 {
			history[i].Return = end // unknown outcome: may take effect any time after the call
		}
	}
	sort.Slice(history, func(i, j int) bool { return history[i].Call < history[j].Call })
	unknown := 0
	for _, op := range history {
		if op.Output.(linOutput).unknown {
			unknown++
		}
	}
	t.Logf("checking %d operations (%d with unknown outcome; %d calls failed in all)", len(history), unknown, failed.Load())
	res, info := porcupine.CheckOperationsVerbose(linModel.ToModel(), history, 2*time.Minute)
	if res != porcupine.Ok {
		path := t.TempDir() + "/history.html"
		if err := porcupine.VisualizePath(linModel.ToModel(), info, path); err == nil {
			t.Logf("visualization: %s", path)
		}
		t.Fatalf("history is not linearizable: %s", res)
	}
}

// notApplied tells errors that prove a write was not applied: the request
// never left the client, or the registry refused it before proposing it
// (it only retries, and then gives up on, "not the leader" answers).
func notApplied(err error) bool {
	s, _ := status.FromError(err)
	msg := s.Message()
	switch s.Code() {
	case codes.Canceled:
		return strings.Contains(msg, "client connection is closing")
	case codes.Unavailable:
		return strings.HasPrefix(msg, "not the leader") || strings.HasPrefix(msg, "no leader accepted") ||
			strings.Contains(msg, "error while dialing") || strings.Contains(msg, "connection refused")
	}
	return false
}

func doLinOp(nd *node, in linInput) (linOutput, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	switch in.op {
	case "put":
		_, err := nd.client().Register(ctx, &registryv1.RegisterRequest{Instance: &registryv1.Instance{Service: "lin", Id: in.key, Address: "127.0.0.1", Port: in.port}})
		return linOutput{}, err
	case "del":
		_, err := nd.client().Deregister(ctx, &registryv1.DeregisterRequest{Service: "lin", Id: in.key})
		if status.Code(err) == codes.NotFound {
			return linOutput{notFound: true}, nil
		}
		return linOutput{}, err
	default:
		r, err := nd.client().GetService(ctx, &registryv1.GetServiceRequest{Service: "lin"})
		if err != nil {
			return linOutput{}, err
		}
		for _, i := range r.GetInstances() {
			if i.GetId() == in.key {
				return linOutput{port: i.GetPort()}, nil
			}
		}
		return linOutput{}, nil
	}
}

// watcher follows the catalog like the control plane does: it keeps the
// last index and resumes from it on another node when its node dies.
type watcher struct {
	state    map[string]uint32 // id → port
	lastIdx  uint64
	seen     map[uint64]int // delta event index → times seen
	resets   int
	snapIdx  uint64 // index of the last snapshot
	received chan uint64
	progress atomic.Uint64 // lastIdx, for the test goroutine
}

func (w *watcher) follow(ctx context.Context, nd *node) error {
	stream, err := nd.client().Watch(ctx, &registryv1.WatchRequest{FromIndex: w.lastIdx, Service: "orders"})
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if resp.GetSnapshot() {
			w.resets++
			w.snapIdx = resp.GetIndex()
			w.state = map[string]uint32{}
		}
		for _, ev := range resp.GetEvents() {
			if !resp.GetSnapshot() {
				w.seen[ev.GetIndex()]++
				if ev.GetIndex() <= w.lastIdx {
					return fmt.Errorf("event at %d after index %d", ev.GetIndex(), w.lastIdx)
				}
			}
			switch ev.GetType() {
			case registryv1.Event_TYPE_INSTANCE_UPSERT:
				w.state[ev.GetInstance().GetId()] = ev.GetInstance().GetPort()
			case registryv1.Event_TYPE_INSTANCE_DELETE:
				delete(w.state, ev.GetInstance().GetId())
			}
		}
		w.lastIdx = resp.GetIndex()
		w.progress.Store(w.lastIdx)
		select {
		case w.received <- w.lastIdx:
		default:
		}
	}
}

// TestWatchResumesOnAnotherNode: a watcher on a follower that dies
// reconnects to another node with its last index and sees every change
// exactly once.
func TestWatchResumesOnAnotherNode(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader := c.leader(10 * time.Second)
	f := c.followers(leader)
	ctx := ctxT(t, 60*time.Second)
	for i := range 5 {
		if _, err := leader.client().Register(ctx, &registryv1.RegisterRequest{Instance: orders(fmt.Sprintf("pre-%d", i), 1)}); err != nil {
			t.Fatal(err)
		}
	}
	w := &watcher{state: map[string]uint32{}, seen: map[uint64]int{}, received: make(chan uint64, 1)}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	done := make(chan error, 1)
	go func() {
		err := w.follow(wctx, f[0])
		// Its node died: resume on the other follower from the last index.
		if wctx.Err() == nil {
			err = w.follow(wctx, f[1])
		}
		done <- err
	}()
	var acked []uint64
	write := func(i int) {
		var idx uint64
		if i%4 == 3 {
			r, err := leader.client().Deregister(ctx, &registryv1.DeregisterRequest{Service: "orders", Id: fmt.Sprintf("w-%d", i-1)})
			if err != nil {
				t.Fatal(err)
			}
			idx = r.GetIndex()
		} else {
			r, err := leader.client().Register(ctx, &registryv1.RegisterRequest{Instance: orders(fmt.Sprintf("w-%d", i), uint32(1000+i))})
			if err != nil {
				t.Fatal(err)
			}
			idx = r.GetIndex()
		}
		acked = append(acked, idx)
	}
	for i := range 100 {
		write(i)
	}
	f[0].stop()
	for i := 100; i < 200; i++ {
		write(i)
	}
	final, err := leader.client().ListInstances(ctx, &registryv1.ListInstancesRequest{Service: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	for w.progress.Load() < acked[len(acked)-1] {
		select {
		case <-w.received:
		case err := <-done:
			t.Fatalf("watcher stopped: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("watcher stuck at %d, want %d", w.progress.Load(), acked[len(acked)-1])
		}
	}
	wcancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) && status.Code(err) != codes.Canceled {
		t.Fatalf("watcher: %v", err)
	}
	if w.resets != 1 {
		t.Errorf("watcher got %d snapshots, want only the initial one", w.resets)
	}
	for _, idx := range acked {
		if idx > w.snapIdx && w.seen[idx] != 1 {
			t.Errorf("change at index %d seen %d times, want exactly once", idx, w.seen[idx])
		}
	}
	want := map[string]uint32{}
	for _, in := range final.GetInstances() {
		want[in.GetId()] = in.GetPort()
	}
	if fmt.Sprint(want) != fmt.Sprint(w.state) {
		t.Fatalf("watcher state differs from the catalog:\n got %v\nwant %v", w.state, want)
	}
}

// TestWatchTooOldIndexGetsSnapshot: resuming from an index the node no
// longer holds changes for starts with a full snapshot, then deltas.
func TestWatchTooOldIndexGetsSnapshot(t *testing.T) {
	c := newCluster(t, 3, func(cfg *server.Config) { cfg.Raft.WatchLogSize = 16 })
	leader := c.leader(10 * time.Second)
	ctx := ctxT(t, 30*time.Second)
	var firstIdx uint64
	for i := range 40 {
		r, err := leader.client().Register(ctx, &registryv1.RegisterRequest{Instance: orders(fmt.Sprintf("o-%d", i), 1)})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			firstIdx = r.GetIndex()
		}
	}
	stream, err := leader.client().Watch(ctx, &registryv1.WatchRequest{FromIndex: firstIdx})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil || !resp.GetSnapshot() || len(resp.GetEvents()) != 40 {
		t.Fatalf("first response: snapshot=%v events=%d err=%v", resp.GetSnapshot(), len(resp.GetEvents()), err)
	}
	if _, err := leader.client().Deregister(ctx, &registryv1.DeregisterRequest{Service: "orders", Id: "o-0"}); err != nil {
		t.Fatal(err)
	}
	resp, err = stream.Recv()
	if err != nil || resp.GetSnapshot() || len(resp.GetEvents()) != 1 || resp.GetEvents()[0].GetType() != registryv1.Event_TYPE_INSTANCE_DELETE {
		t.Fatalf("delta after snapshot: %v %v", resp, err)
	}
}
