package store

import (
	"context"
	_ "embed"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchyard-mesh/switchyard/services/kit/rawconn"

	"github.com/switchyard-mesh/switchyard/services/ratelimit/internal/quota"
)

//go:embed decide.lua
var decideLua string

// argsPerCheck is how many ARGV entries decide.lua reads per key.
const argsPerCheck = 4

// Redis keeps state in Redis, shared by every replica. One request costs one
// EVALSHA of decide.lua; the script is loaded once and re-sent with EVAL only
// when Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH).
//
// Concurrent requests are coalesced: workers (redis.pipelines, one by
// default) each take whatever requests are queued and send their EVALSHAs
// as one pipeline, so under load one write and one read carry many
// decisions (each still its own atomic script call and one round trip), and
// a lone request goes out at once. While a pipeline is in flight the next
// requests queue up for the next one; on a loopback or LAN Redis one worker
// makes the largest batches, and every write and read saved is CPU that
// both processes get back (a loopback write costs the receiver's TCP work
// too).
//
// With a Redis Cluster client the checks are grouped by hash tag (one
// descriptor's limits share a slot) and the groups' scripts are pipelined:
// still one round trip per node, but all-or-nothing then holds per
// descriptor rather than per request.
type Redis struct {
	client  redis.UniversalClient
	script  *redis.Script
	cluster bool
	workers int
	queue   chan *job
	stop    chan struct{}
	wg      sync.WaitGroup
}

// job is one request's script call waiting for a worker.
type job struct {
	ctx context.Context
	// deadline, when set, bounds the wait as well as ctx's.
	deadline time.Time
	keys     []string
	args     []any
	done     chan jobResult
	// timer fires at deadline; jobs (and their timers) are reused once
	// their result has been received.
	timer *time.Timer
}

type jobResult struct {
	vals []int64
	err  error
}

var jobs = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &job{done: make(chan jobResult, 1), timer: t}
}}

// expired reports whether the caller has given up on j.
func (j *job) expired(now time.Time) error {
	if err := j.ctx.Err(); err != nil {
		return err
	}
	if !j.deadline.IsZero() && !now.Before(j.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// maxBatch bounds how many script calls one pipeline carries.
const maxBatch = 128

var _ Store = (*Redis)(nil)

// NewRedis wraps a go-redis client (single, Sentinel failover or Cluster)
// and starts workers pipelining requests over it; Close stops them.
func NewRedis(client redis.UniversalClient, workers int) *Redis {
	_, cluster := client.(*redis.ClusterClient)
	r := &Redis{client: client, script: redis.NewScript(decideLua), cluster: cluster, workers: max(workers, 1),
		queue: make(chan *job, 4*maxBatch), stop: make(chan struct{})}
	if !cluster {
		for range r.workers {
			r.wg.Add(1)
			go r.work()
		}
	}
	return r
}

// Close stops the workers; it does not close the client.
func (r *Redis) Close() {
	close(r.stop)
	r.wg.Wait()
}

func (r *Redis) work() {
	defer r.wg.Done()
	batch := make([]*job, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case <-r.stop:
			return
		case j := <-r.queue:
			batch = append(batch, j)
		}
		r.drain(&batch)
		if len(batch) == 1 {
			// Let handlers that are about to enqueue run first: under load
			// this turns many one-command round trips into one pipeline.
			runtime.Gosched()
			r.drain(&batch)
		}
		r.execute(batch)
	}
}

// drain adds queued jobs to batch without waiting.
func (r *Redis) drain(batch *[]*job) {
	for len(*batch) < maxBatch {
		select {
		case j := <-r.queue:
			*batch = append(*batch, j)
		default:
			return
		}
	}
}

// execute sends a batch as one pipeline, skipping requests whose callers
// already gave up.
func (r *Redis) execute(batch []*job) {
	now := time.Now()
	live := batch[:0]
	// The pipeline lives as long as its most patient caller, and is not
	// cancelled when one caller goes away.
	var deadline time.Time
	for _, j := range batch {
		if err := j.expired(now); err != nil {
			j.done <- jobResult{err: err}
			continue
		}
		live = append(live, j)
		d, ok := j.ctx.Deadline()
		if !ok || !j.deadline.IsZero() && j.deadline.Before(d) {
			d = j.deadline
		}
		if d.IsZero() {
			d = now.Add(time.Minute)
		}
		if d.After(deadline) {
			deadline = d
		}
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	pipe := r.client.Pipeline()
	cmds := make([]*redis.Cmd, len(live))
	for i, j := range live {
		cmds[i] = r.script.EvalSha(ctx, pipe, j.keys, j.args...)
	}
	_, _ = pipe.Exec(ctx) // errors are per command, read below
	for i, j := range live {
		vals, err := cmds[i].Int64Slice()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			vals, err = r.script.Run(ctx, r.client, j.keys, j.args...).Int64Slice()
		}
		j.done <- jobResult{vals: vals, err: err}
	}
}

// Load sends the script to Redis so the first request needs no EVAL, and
// opens the connections the workers will use, so the first requests do not
// pay for dialing inside their deadline.
func (r *Redis) Load(ctx context.Context) error {
	if err := r.script.Load(ctx, r.client).Err(); err != nil {
		return fmt.Errorf("load decide script: %w", err)
	}
	n := r.workers
	errs := make(chan error, 2*n)
	for range n {
		go func() { errs <- r.client.Ping(ctx).Err() }()
		go func() {
			pipe := r.client.Pipeline()
			pipe.Ping(ctx)
			pipe.Ping(ctx)
			_, err := pipe.Exec(ctx)
			errs <- err
		}()
	}
	for range 2 * n {
		if err := <-errs; err != nil {
			return fmt.Errorf("open redis connections: %w", err)
		}
	}
	return nil
}

// Ping implements Store.
func (r *Redis) Ping(ctx context.Context) error {
	return r.client.Ping(ctx).Err()
}

// Decide implements Store.
func (r *Redis) Decide(ctx context.Context, now time.Time, checks []quota.Check, commit bool) (Result, error) {
	return r.DecideBy(ctx, time.Time{}, now, checks, commit)
}

// DecideBy is Decide giving up at deadline (if not zero) as well as when
// ctx ends. It spares the caller a derived context per decision: the wait
// is bounded by a timer reused from one decision to the next.
func (r *Redis) DecideBy(ctx context.Context, deadline, now time.Time, checks []quota.Check, commit bool) (Result, error) {
	if len(checks) == 0 {
		return Result{Allowed: true}, nil
	}
	us := now.UnixMicro()
	if !r.cluster {
		return r.run(ctx, deadline, us, checks, commit)
	}
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	return r.decideCluster(ctx, us, checks, commit)
}

// run decides checks with one script call, coalesced with other requests'
// calls into a pipeline by a worker.
func (r *Redis) run(ctx context.Context, deadline time.Time, now int64, checks []quota.Check, commit bool) (Result, error) {
	ps := params(checks, now)
	keys, args := scriptArgs(now, ps, checks, commit)
	j := jobs.Get().(*job)
	j.ctx, j.deadline, j.keys, j.args = ctx, deadline, keys, args
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		j.timer.Reset(time.Until(deadline))
		timeout = j.timer.C
	}
	select {
	case r.queue <- j:
	case <-ctx.Done():
		r.release(j)
		return Result{}, fmt.Errorf("redis decide: queue full: %w", ctx.Err())
	case <-timeout:
		r.release(j)
		return Result{}, fmt.Errorf("redis decide: queue full: %w", context.DeadlineExceeded)
	}
	select {
	case res := <-j.done:
		r.release(j)
		if res.err != nil {
			return Result{}, fmt.Errorf("redis decide: %w", res.err)
		}
		return decodeReply(res.vals, ps, now)
	// A job given up on is not reused: its worker will still answer it.
	case <-ctx.Done():
		return Result{}, fmt.Errorf("redis decide: %w", ctx.Err())
	case <-timeout:
		return Result{}, fmt.Errorf("redis decide: %w", context.DeadlineExceeded)
	}
}

// release returns a job whose result was received (or that was never
// queued) to the pool.
func (r *Redis) release(j *job) {
	j.timer.Stop()
	*j = job{done: j.done, timer: j.timer}
	jobs.Put(j)
}

// decideCluster runs one script per hash tag (descriptor), pipelined: a
// script may only touch keys of one slot.
func (r *Redis) decideCluster(ctx context.Context, now int64, checks []quota.Check, commit bool) (Result, error) {
	groups := map[string][]int{}
	var order []string
	for i, c := range checks {
		tag := hashTag(c.Key)
		if _, ok := groups[tag]; !ok {
			order = append(order, tag)
		}
		groups[tag] = append(groups[tag], i)
	}
	type part struct {
		ps  []quota.Params
		cmd *redis.Cmd
		// keys and args to re-send with EVAL after NOSCRIPT
		keys []string
		args []any
	}
	parts := make([]part, len(order))
	pipe := r.client.Pipeline()
	for g, tag := range order {
		sub := make([]quota.Check, len(groups[tag]))
		for j, i := range groups[tag] {
			sub[j] = checks[i]
		}
		p := &parts[g]
		p.ps = params(sub, now)
		p.keys, p.args = scriptArgs(now, p.ps, sub, commit)
		p.cmd = r.script.EvalSha(ctx, pipe, p.keys, p.args...)
	}
	if _, err := pipe.Exec(ctx); err != nil && !redis.HasErrorPrefix(err, "NOSCRIPT") {
		return Result{}, fmt.Errorf("redis decide: %w", err)
	}
	res := Result{Allowed: true, Outcomes: make([]quota.Outcome, len(checks))}
	for g, tag := range order {
		p := &parts[g]
		vals, err := p.cmd.Int64Slice()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			vals, err = r.script.Run(ctx, r.client, p.keys, p.args...).Int64Slice()
		}
		if err != nil {
			return Result{}, fmt.Errorf("redis decide: %w", err)
		}
		sub, err := decodeReply(vals, p.ps, now)
		if err != nil {
			return Result{}, err
		}
		res.Allowed = res.Allowed && sub.Allowed
		for j, i := range groups[tag] {
			res.Outcomes[i] = sub.Outcomes[j]
		}
	}
	return res, nil
}

// scriptArgs lays out the keys and ARGV of decide.lua for checks at now.
func scriptArgs(now int64, ps []quota.Params, checks []quota.Check, commit bool) ([]string, []any) {
	keys := make([]string, len(checks))
	args := make([]any, 0, 2+argsPerCheck*len(checks))
	c := "0"
	if commit {
		c = "1"
	}
	args = append(args, now, c)
	for i, ch := range checks {
		keys[i] = ch.Key
		p := ps[i]
		if !p.GCRA {
			kind := "f"
			if p.Shadow {
				kind = "F"
			}
			// Milliseconds to the window's end, rounded up, at least 1.
			ttl := max((p.WindowEnd-now+999)/1000, 1)
			args = append(args, kind, p.Limit-p.Hits, p.Hits, ttl)
			continue
		}
		kind := "g"
		if p.Shadow {
			kind = "G"
		}
		slack := p.Hits*p.Interval - p.Burst*p.Interval
		if p.Limit <= 0 {
			slack = 1 // always over
		}
		args = append(args, kind, slack, p.Hits*p.Interval, 0)
	}
	return keys, args
}

// decodeReply reads the script's reply (the stored value of each check,
// then 1 if the request passed) and computes the outcomes from the stored
// values with quota.Decide, the arithmetic the script applied.
func decodeReply(vals []int64, ps []quota.Params, now int64) (Result, error) {
	n := len(ps)
	if len(vals) != n+1 {
		return Result{}, fmt.Errorf("redis decide: reply has %d values, want %d", len(vals), n+1)
	}
	allowed, outs, _ := quota.Decide(ps, now, vals[:n])
	if allowed != (vals[n] == 1) {
		// The script and quota disagree: a bug, or a script from another
		// version. Better the failure mode than a wrong answer.
		return Result{}, fmt.Errorf("redis decide: script says allowed=%d, quota says %v", vals[n], allowed)
	}
	return Result{Allowed: allowed, Outcomes: outs}, nil
}

// hashTag is the part of key Redis Cluster hashes: between the first '{'
// and the next '}'.
func hashTag(key string) string {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			return key[s+1 : s+1+e]
		}
	}
	return key
}

// Options are the settings of a go-redis client for rate limiting: no
// retries (the caller's deadline is the budget) and deadlines taken from the
// request context.
type Options struct {
	// Addrs: one address for a single server, several for a Cluster, or
	// the Sentinels when MasterName is set.
	Addrs      []string
	MasterName string
	Username   string
	Password   string
	DB         int
	// Timeout bounds dialing, reads and writes.
	Timeout  time.Duration
	PoolSize int
}

// NewClient builds the UniversalClient Options describe.
func NewClient(o Options) redis.UniversalClient {
	dialTimeout := max(o.Timeout*4, 100*time.Millisecond)
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return redis.NewUniversalClient(&redis.UniversalOptions{
		// Raw socket calls: fewer OS thread hand-offs per pipeline round
		// trip (kit/rawconn).
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return rawconn.DialContext(ctx, dialer, network, addr)
		},
		Addrs:                 o.Addrs,
		MasterName:            o.MasterName,
		Username:              o.Username,
		Password:              o.Password,
		DB:                    o.DB,
		DialTimeout:           dialTimeout,
		ReadTimeout:           o.Timeout,
		WriteTimeout:          o.Timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		PoolSize:              o.PoolSize,
		MinIdleConns:          min(o.PoolSize, 8),
		DisableIdentity:       true,
		Protocol:              2,
	})
}

// String describes o without secrets, for logs.
func (o Options) String() string {
	mode := "single"
	switch {
	case o.MasterName != "":
		mode = "sentinel(" + o.MasterName + ")"
	case len(o.Addrs) > 1:
		mode = "cluster"
	}
	return mode + " " + strings.Join(o.Addrs, ",") + " db=" + strconv.Itoa(o.DB)
}
