package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/registry/watch"
)

// TestFollowAcrossNodeDeaths: watch.Follow (the client the control plane
// and GeoDNS use) keeps a consistent catalog while the node it watches is
// stopped, then the next one: every change once, the state equal to the
// leader's at the end.
func TestFollowAcrossNodeDeaths(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader := c.leader(10 * time.Second)
	f := c.followers(leader)
	ctx := ctxT(t, 60*time.Second)
	// Watch the followers first, the leader last.
	nodes := []*node{f[0], f[1], leader}
	var clients []registryv1.RegistryServiceClient
	for _, nd := range nodes {
		clients = append(clients, nd.client())
	}
	var (
		mu      sync.Mutex
		state   = map[string]uint32{}
		seen    = map[uint64]int{}
		last    uint64
		snaps   int
		snapIdx uint64
	)
	fctx, fcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- watch.Follow(fctx, watch.Options{Nodes: clients, Request: &registryv1.WatchRequest{Service: "orders"}, Backoff: 20 * time.Millisecond},
			func(r *registryv1.WatchResponse) error {
				mu.Lock()
				defer mu.Unlock()
				if r.GetSnapshot() {
					snaps++
					snapIdx = r.GetIndex()
					state = map[string]uint32{}
				}
				for _, ev := range r.GetEvents() {
					if !r.GetSnapshot() {
						if ev.GetIndex() <= last {
							return fmt.Errorf("event %d after index %d", ev.GetIndex(), last)
						}
						seen[ev.GetIndex()]++
					}
					if ev.GetType() == registryv1.Event_TYPE_INSTANCE_DELETE {
						delete(state, ev.GetInstance().GetId())
					} else {
						state[ev.GetInstance().GetId()] = ev.GetInstance().GetPort()
					}
				}
				last = r.GetIndex()
				return nil
			})
	}()
	var acked []uint64
	// A write can lose its leader mid-commit on a loaded machine (outcome
	// unknown): find the leader again and repeat it; both calls are
	// idempotent, and a repeated deregister that finds nothing was applied.
	write := func(from, to int) {
		for i := from; i < to; i++ {
			for attempt := 0; ; attempt++ {
				var r interface{ GetIndex() uint64 }
				var err error
				if i%5 == 4 {
					r, err = leader.client().Deregister(ctx, &registryv1.DeregisterRequest{Service: "orders", Id: fmt.Sprintf("w-%d", i-1)})
				} else {
					r, err = leader.client().Register(ctx, &registryv1.RegisterRequest{Instance: orders(fmt.Sprintf("w-%d", i), uint32(2000+i))})
				}
				if status.Code(err) == codes.Unavailable && attempt < 5 {
					leader = c.leader(10 * time.Second)
					continue
				}
				if status.Code(err) == codes.NotFound && attempt > 0 {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				acked = append(acked, r.GetIndex())
				break
			}
		}
	}
	write(0, 60)
	f[0].stop()
	write(60, 120)
	f[1].stop() // now only the leader is left to watch, and no quorum: writes stop
	f[0].start()
	leader = c.leader(10 * time.Second)
	write(120, 180)
	final, err := leader.client().ListInstances(ctx, &registryv1.ListInstancesRequest{Service: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return last >= acked[len(acked)-1]
	})
	fcancel()
	if err := <-done; err != nil {
		t.Fatalf("follow: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	// Usually only the first; a node that restored a snapshot newer than
	// the watcher's index rightly answers with another (seen under heavy
	// load). Changes after the last snapshot must each arrive once.
	if snaps < 1 {
		t.Errorf("%d snapshots, want the first", snaps)
	}
	for _, idx := range acked {
		if idx > snapIdx && seen[idx] != 1 {
			t.Errorf("change at %d seen %d times", idx, seen[idx])
		}
	}
	want := map[string]uint32{}
	for _, in := range final.GetInstances() {
		want[in.GetId()] = in.GetPort()
	}
	if fmt.Sprint(want) != fmt.Sprint(state) {
		t.Fatalf("followed state differs:\n got %v\nwant %v", state, want)
	}
}
