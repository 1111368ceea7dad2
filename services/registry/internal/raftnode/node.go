// Package raftnode runs one registry node's Raft: the write-ahead log and
// file snapshots on disk, the mTLS transport, bootstrap of the first
// cluster, leadership hand-over, linearizable reads and membership changes.
// The state machine itself is the pure catalog package.
package raftnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"

	"github.com/switchyard-mesh/switchyard/services/registry/internal/catalog"
)

// Sentinel errors the API maps to gRPC codes.
var (
	// ErrNotLeader: this node cannot accept the write or the linearizable
	// read; forward it to the leader or retry.
	ErrNotLeader = errors.New("not the leader")
	// ErrNoLeader: no leader is known right now (an election is running or
	// this node is cut off).
	ErrNoLeader = errors.New("no leader known")
	// ErrUnknownOutcome: leadership was lost while the write was in flight;
	// it may or may not have been committed.
	ErrUnknownOutcome = errors.New("leadership lost while committing, outcome unknown")
)

// Timeouts are Raft's timing knobs.
type Timeouts struct {
	Heartbeat   time.Duration
	Election    time.Duration
	LeaderLease time.Duration
	Commit      time.Duration
}

// LANTimeouts suit nodes on one LAN (sub-millisecond RTT). A follower
// starts an election after 1-2× Heartbeat without contact, so a dead leader
// is replaced in about 0.3-0.6 s, inside the 1 s target. The leader steps
// down after LeaderLease without hearing from a quorum; keeping it equal to
// Heartbeat (rather than half) stops a leader on a busy host from stepping
// down over one slow heartbeat round. hashicorp/raft's defaults (1 s, 1 s,
// 500 ms) are tuned for WANs and give 1.5-3 s failovers.
func LANTimeouts() Timeouts {
	return Timeouts{Heartbeat: 250 * time.Millisecond, Election: 250 * time.Millisecond, LeaderLease: 250 * time.Millisecond, Commit: 5 * time.Millisecond}
}

// Peer is one server of the bootstrap configuration.
type Peer struct {
	ID      string
	Address string
}

// Config configures a node.
type Config struct {
	ID string
	// DataDir holds the write-ahead log and snapshots; a restarted node
	// finds its term, log and snapshots there and rejoins with them.
	DataDir string
	// APIAddress is this node's gRPC address as other nodes reach it.
	APIAddress string
	// Bootstrap lists the first cluster's voters (including this node).
	// It is used only when DataDir holds no Raft state.
	Bootstrap         []Peer
	Timeouts          Timeouts
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// ApplyTimeout bounds how long a write waits to be enqueued.
	ApplyTimeout time.Duration
	Log          *slog.Logger
	Metrics      *Metrics
}

// Node is a running Raft member.
type Node struct {
	cfg       Config
	log       *slog.Logger
	raft      *raft.Raft
	store     *catalog.Store
	applied   *indexWaiter
	wal       *wal.WAL
	meta      *metadb.BoltMetaDB
	transport *raft.NetworkTransport
	verifier  *verifier
	metrics   *Metrics
	notify    chan bool
	obsCh     chan raft.Observation
	observer  *raft.Observer

	mu        sync.Mutex
	leaderCtx context.Context
	cancelLdr context.CancelFunc
	changed   chan struct{} // closed when leadership readiness changes
	ready     atomic.Bool
}

// Start opens the node's storage, starts Raft on stream and bootstraps the
// cluster when this is a first start with Bootstrap peers.
func Start(cfg Config, stream raft.StreamLayer, store *catalog.Store) (*Node, error) {
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "wal"), 0o700); err != nil {
		return nil, fmt.Errorf("raft data dir %s: %w", cfg.DataDir, err)
	}
	hlog := hclog.FromStandardLogger(slog.NewLogLogger(cfg.Log.Handler(), slog.LevelInfo), &hclog.LoggerOptions{Name: "raft", Level: hclog.Info})
	w, meta, err := openLog(filepath.Join(cfg.DataDir, "wal"), hlog.Named("wal"))
	if err != nil {
		return nil, fmt.Errorf("open raft log in %s: %w", cfg.DataDir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hlog)
	if err != nil {
		_ = w.Close()
		_ = meta.Close()
		return nil, fmt.Errorf("open snapshots in %s: %w", cfg.DataDir, err)
	}
	transport := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 4, Timeout: 5 * time.Second, Logger: hlog.Named("transport"),
	})

	n := &Node{
		cfg: cfg, log: cfg.Log, store: store, applied: newIndexWaiter(), wal: w, meta: meta, transport: transport,
		metrics: cfg.Metrics, notify: make(chan bool, 8), obsCh: make(chan raft.Observation, 64), changed: make(chan struct{}),
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.Timeouts.Heartbeat
	rc.ElectionTimeout = cfg.Timeouts.Election
	rc.LeaderLeaseTimeout = cfg.Timeouts.LeaderLease
	rc.CommitTimeout = cfg.Timeouts.Commit
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 512
	rc.NotifyCh = n.notify
	rc.Logger = hlog
	if err := raft.ValidateConfig(rc); err != nil {
		_ = w.Close()
		_ = meta.Close()
		_ = transport.Close()
		return nil, fmt.Errorf("raft timeouts: %w", err)
	}

	existing, err := raft.HasExistingState(w, w, snaps)
	if err != nil {
		_ = w.Close()
		_ = meta.Close()
		_ = transport.Close()
		return nil, fmt.Errorf("inspect raft state in %s: %w", cfg.DataDir, err)
	}
	r, err := raft.NewRaft(rc, &fsm{store: store, applied: n.applied}, w, w, snaps, transport)
	if err != nil {
		_ = w.Close()
		_ = meta.Close()
		_ = transport.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	n.verifier = &verifier{raft: r}
	n.observer = raft.NewObserver(n.obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(n.observer)

	switch {
	case existing:
		n.log.Info("raft state found, rejoining with it", "data_dir", cfg.DataDir)
	case len(cfg.Bootstrap) > 0:
		var servers []raft.Server
		for _, p := range cfg.Bootstrap {
			servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address), Suffrage: raft.Voter})
		}
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			_ = n.Shutdown()
			return nil, fmt.Errorf("bootstrap raft cluster: %w", err)
		}
		n.log.Info("bootstrapped raft cluster", "voters", len(servers))
	default:
		n.log.Info("no raft state and no bootstrap peers: waiting to be added with AddVoter")
	}
	return n, nil
}

// Run follows leadership until ctx is cancelled, then shuts Raft down.
func (n *Node) Run(ctx context.Context) error {
	defer func() {
		if err := n.Shutdown(); err != nil {
			n.log.Warn("raft shutdown", "err", err)
		}
	}()
	var establish context.CancelFunc
	for {
		select {
		case <-ctx.Done():
			if establish != nil {
				establish()
			}
			n.setLeader(false)
			return nil
		case o := <-n.obsCh:
			lo := o.Data.(raft.LeaderObservation)
			n.metrics.leaderChange(string(lo.LeaderID))
			n.log.Info("leader changed", "leader_id", lo.LeaderID, "leader_addr", lo.LeaderAddr)
		case isLeader := <-n.notify:
			if establish != nil {
				establish()
				establish = nil
			}
			n.setLeader(false)
			if isLeader {
				var ectx context.Context
				ectx, establish = context.WithCancel(ctx)
				go n.establishLeadership(ectx)
			}
		}
	}
}

// establishLeadership makes a new leader ready for linearizable reads and
// forwarded writes. It commits a command of its own term (recording its
// API address for the followers): once that is applied, every entry of
// earlier terms is applied too, and the FSM's applied index has passed the
// term's no-op entry, which the FSM never sees.
func (n *Node) establishLeadership(ctx context.Context) {
	for ctx.Err() == nil {
		err := n.applyRaw(catalog.SetMember{Member: catalog.Member{ID: n.cfg.ID, APIAddress: n.cfg.APIAddress}})
		if err == nil {
			n.setLeader(true)
			n.log.Info("leadership established", "term", n.raft.CurrentTerm())
			return
		}
		if n.raft.State() != raft.Leader {
			return
		}
		n.log.Warn("establish leadership", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (n *Node) applyRaw(c catalog.Command) error {
	b, err := catalog.Encode(c)
	if err != nil {
		return err
	}
	f := n.raft.Apply(b, n.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		return err
	}
	if res, ok := f.Response().(catalog.Result); ok && res.Err != nil {
		return res.Err
	}
	return nil
}

func (n *Node) setLeader(ready bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ready.Load() == ready {
		return
	}
	n.ready.Store(ready)
	if ready {
		n.leaderCtx, n.cancelLdr = context.WithCancel(context.Background())
	} else if n.cancelLdr != nil {
		n.cancelLdr()
		n.leaderCtx, n.cancelLdr = nil, nil
	}
	close(n.changed)
	n.changed = make(chan struct{})
	n.metrics.setReady(ready)
}

// Leadership returns, when this node is the established leader, a context
// cancelled when it stops being one; and a channel closed at the next
// change. Leader-only work (health checks, reaping) runs under it.
func (n *Node) Leadership() (context.Context, bool, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leaderCtx, n.leaderCtx != nil, n.changed
}

// IsLeader reports whether this node is the established leader.
func (n *Node) IsLeader() bool { return n.ready.Load() }

// Apply proposes a command and waits until it is committed and applied.
// A command the catalog refuses returns its error in the Result.
func (n *Node) Apply(c catalog.Command) (catalog.Result, error) {
	if !n.ready.Load() {
		return catalog.Result{}, ErrNotLeader
	}
	b, err := catalog.Encode(c)
	if err != nil {
		return catalog.Result{}, err
	}
	start := time.Now()
	f := n.raft.Apply(b, n.cfg.ApplyTimeout)
	err = f.Error()
	n.metrics.observeApply(time.Since(start), err)
	switch {
	case err == nil:
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrEnqueueTimeout):
		return catalog.Result{}, fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
		return catalog.Result{}, fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
	default:
		return catalog.Result{}, fmt.Errorf("raft apply: %w", err)
	}
	res, ok := f.Response().(catalog.Result)
	if !ok {
		return catalog.Result{}, fmt.Errorf("raft apply: unexpected response %T", f.Response())
	}
	return res, nil
}

// ReadIndex makes a linearizable read possible on the leader: it takes the
// commit index, confirms leadership with a quorum (concurrent reads share
// one round), and waits until the state machine has applied that index.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	if !n.ready.Load() {
		return 0, ErrNotLeader
	}
	idx := n.raft.CommitIndex()
	if err := n.verifier.verify(ctx); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	return idx, n.WaitApplied(ctx, idx)
}

// WaitApplied waits until the state machine has applied index i.
func (n *Node) WaitApplied(ctx context.Context, i uint64) error {
	for {
		ok, ch := n.applied.reached(i)
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for index %d: %w", i, ctx.Err())
		}
	}
}

// Leader returns the leader's ID and API address as this node knows them.
func (n *Node) Leader() (id, apiAddress string, err error) {
	_, lid := n.raft.LeaderWithID()
	if lid == "" {
		return "", "", ErrNoLeader
	}
	m, ok := n.store.Member(string(lid))
	if !ok {
		return string(lid), "", fmt.Errorf("%w: leader %s has not announced its API address yet", ErrNoLeader, lid)
	}
	return string(lid), m.APIAddress, nil
}

// AddVoter adds a server, or only records its API address when it is
// already a voter at that Raft address. Call it on the leader.
func (n *Node) AddVoter(id, raftAddr, apiAddr string) (uint64, error) {
	if !n.ready.Load() {
		return 0, ErrNotLeader
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return 0, fmt.Errorf("read raft configuration: %w", err)
	}
	var index uint64
	member := false
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) == id && string(s.Address) == raftAddr && s.Suffrage == raft.Voter {
			member = true
		}
	}
	if !member {
		f := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, 10*time.Second)
		if err := f.Error(); err != nil {
			return 0, fmt.Errorf("add voter %s at %s: %w", id, raftAddr, err)
		}
		index = f.Index()
		n.log.Info("added voter", "id", id, "raft_address", raftAddr)
	}
	if apiAddr != "" {
		if m, ok := n.store.Member(id); !ok || m.APIAddress != apiAddr {
			res, err := n.Apply(catalog.SetMember{Member: catalog.Member{ID: id, APIAddress: apiAddr}})
			if err == nil {
				err = res.Err
			}
			if err != nil {
				return index, fmt.Errorf("record api address of %s: %w", id, err)
			}
			index = res.Index
		}
	}
	return index, nil
}

// RemoveServer removes a server from the cluster. Call it on the leader.
func (n *Node) RemoveServer(id string) (uint64, error) {
	if !n.ready.Load() {
		return 0, ErrNotLeader
	}
	f := n.raft.RemoveServer(raft.ServerID(id), 0, 10*time.Second)
	if err := f.Error(); err != nil {
		return 0, fmt.Errorf("remove server %s: %w", id, err)
	}
	n.log.Info("removed server", "id", id)
	if id != n.cfg.ID {
		if _, err := n.Apply(catalog.SetMember{Member: catalog.Member{ID: id}, Remove: true}); err != nil {
			n.log.Warn("forget removed server's api address", "id", id, "err", err)
		}
	}
	return f.Index(), nil
}

// Server is one member of the Raft configuration.
type Server struct {
	ID, Address, APIAddress string
	Voter                   bool
}

// Status is this node's own view.
type Status struct {
	ID, State, LeaderID, LeaderAddress string
	Term, LastIndex, CommitIndex       uint64
	AppliedIndex                       uint64
	LastContact                        time.Time
	Servers                            []Server
}

// Status reports this node's Raft state and configuration.
func (n *Node) Status() (Status, error) {
	laddr, lid := n.raft.LeaderWithID()
	st := Status{
		ID: n.cfg.ID, State: n.raft.State().String(), LeaderID: string(lid), LeaderAddress: string(laddr),
		Term: n.raft.CurrentTerm(), LastIndex: n.raft.LastIndex(), CommitIndex: n.raft.CommitIndex(),
		AppliedIndex: n.raft.AppliedIndex(), LastContact: n.raft.LastContact(),
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return st, fmt.Errorf("read raft configuration: %w", err)
	}
	for _, s := range cf.Configuration().Servers {
		m, _ := n.store.Member(string(s.ID))
		st.Servers = append(st.Servers, Server{ID: string(s.ID), Address: string(s.Address), APIAddress: m.APIAddress, Voter: s.Suffrage == raft.Voter})
	}
	return st, nil
}

// State is the Raft state name (Leader, Follower, Candidate, Shutdown).
func (n *Node) State() raft.RaftState { return n.raft.State() }

// Shutdown stops Raft and closes the log. It is safe to call twice.
func (n *Node) Shutdown() error {
	var errs []error
	if n.raft != nil {
		n.raft.DeregisterObserver(n.observer)
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft: %w", err))
		}
	}
	if err := n.transport.Close(); err != nil {
		errs = append(errs, fmt.Errorf("raft transport: %w", err))
	}
	if err := n.wal.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, fmt.Errorf("raft log: %w", err))
	}
	if err := n.meta.Close(); err != nil {
		errs = append(errs, fmt.Errorf("raft log meta: %w", err))
	}
	return errors.Join(errs...)
}

// verifier coalesces leadership checks: every read waiting when a round
// starts shares its result, so a burst of reads costs one heartbeat round.
type verifier struct {
	raft    *raft.Raft
	mu      sync.Mutex
	next    *round
	running bool
}

type round struct {
	done chan struct{}
	err  error
}

func (v *verifier) verify(ctx context.Context) error {
	v.mu.Lock()
	if v.next == nil {
		v.next = &round{done: make(chan struct{})}
	}
	r := v.next
	if !v.running {
		v.running = true
		go v.loop()
	}
	v.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (v *verifier) loop() {
	for {
		v.mu.Lock()
		r := v.next
		v.next = nil
		if r == nil {
			v.running = false
			v.mu.Unlock()
			return
		}
		v.mu.Unlock()
		r.err = v.raft.VerifyLeader().Error()
		close(r.done)
	}
}

// openLog opens the Raft log and stable store. raft-wal must be v0.4.1 or
// later: v0.4.0 marked the tail segment sealed without writing its index
// when Raft truncated a conflicting suffix (a follower after a leader
// change), and the node then panicked on every restart (raft-wal #31).
// raft-wal's Close leaves its meta database open (and flocked); owning it
// lets Shutdown close it, so a node restarts in-process.
func openLog(dir string, log hclog.Logger) (*wal.WAL, *metadb.BoltMetaDB, error) {
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithMetaStore(meta), wal.WithLogger(log))
	if err != nil {
		_ = meta.Close()
		return nil, nil, err
	}
	return w, meta, nil
}
