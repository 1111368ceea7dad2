// Package api serves the registry's gRPC API (RegistryService and
// ClusterService) and its small HTTP/JSON twin. Any node answers: writes
// and linearizable reads are forwarded to the leader over mTLS, stale reads
// and watches are served from the node's own state.
package api

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/raftnode"
)

// forwardedKey marks a request a follower forwarded, so a node that is not
// the leader either never forwards it again.
const forwardedKey = "x-switchyard-registry-forwarded"

// forwarder keeps one connection per leader address.
type forwarder struct {
	node  *raftnode.Node
	creds credentials.TransportCredentials
	// wait is how long a request waits for a leader to be known (an
	// election in progress) before failing with Unavailable.
	wait time.Duration

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func (f *forwarder) conn(addr string) (*grpc.ClientConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.conns[addr]; ok {
		return c, nil
	}
	c, err := grpcx.Dial(addr, f.creds)
	if err != nil {
		return nil, err
	}
	f.conns[addr] = c
	return c, nil
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for addr, c := range f.conns {
		_ = c.Close()
		delete(f.conns, addr)
	}
}

func wasForwarded(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	return ok && len(md.Get(forwardedKey)) > 0
}

// onLeader runs local on this node when it leads, or remote against the
// leader otherwise. While no leader is known, or the node asked turns out
// not to lead, it retries until f.wait is over: an election is invisible
// to the client beyond the delay. Errors that leave the outcome unknown
// (a connection lost mid-call) are returned, never retried.
func onLeader[Resp any](ctx context.Context, f *forwarder, local func(context.Context) (Resp, error), remote func(context.Context, *grpc.ClientConn) (Resp, error)) (Resp, error) {
	deadline := time.Now().Add(f.wait)
	var zero Resp
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if time.Now().After(deadline) {
				return zero, status.Error(codes.Unavailable, "no leader accepted the request within "+f.wait.String())
			}
			select {
			case <-ctx.Done():
				return zero, status.FromContextError(ctx.Err()).Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		if f.node.IsLeader() {
			resp, err := local(ctx)
			err = toStatus(err)
			if isNotLeader(err) && !wasForwarded(ctx) {
				continue
			}
			return resp, err
		}
		if wasForwarded(ctx) {
			return zero, status.Error(codes.Unavailable, notLeaderMsg+": forwarded to a node that no longer leads")
		}
		_, addr, err := f.node.Leader()
		if err != nil {
			continue
		}
		conn, err := f.conn(addr)
		if err != nil {
			return zero, status.Error(codes.Unavailable, err.Error())
		}
		resp, err := remote(metadata.AppendToOutgoingContext(ctx, forwardedKey, "1"), conn)
		if isNotLeader(err) {
			continue
		}
		return resp, err
	}
}
