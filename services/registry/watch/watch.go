// Package watch follows the registry's catalog from a client: it keeps the
// last index received and, when the node it watches fails, resumes on the
// next node from that index, so the caller sees every change exactly once
// (or a snapshot when the new node no longer holds the changes it missed).
// The control plane and GeoDNS use it to consume RegistryService.Watch.
package watch

import (
	"context"
	"errors"
	"fmt"
	"time"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
)

// Options configure Follow.
type Options struct {
	// Nodes are clients of the registry nodes to watch, tried in turn.
	Nodes []registryv1.RegistryServiceClient
	// Request selects what to watch; its FromIndex is where to start
	// (0: with a snapshot).
	Request *registryv1.WatchRequest
	// Backoff is the pause after a failed attempt before trying the next
	// node (default 100ms); it doubles per consecutive failure up to 5s.
	Backoff time.Duration
	// OnError, if set, is told about each failed attempt.
	OnError func(node int, err error)
}

// Follow streams responses to handle until ctx ends or handle fails.
// Every response is handed over in index order; after a reconnect the
// stream resumes after the last index handle accepted. A response with
// Snapshot set replaces everything the caller holds. Follow returns
// handle's error, or nil once ctx is cancelled.
func Follow(ctx context.Context, o Options, handle func(*registryv1.WatchResponse) error) error {
	if len(o.Nodes) == 0 {
		return errors.New("watch: no registry nodes")
	}
	backoff := o.Backoff
	if backoff <= 0 {
		backoff = 100 * time.Millisecond
	}
	req := &registryv1.WatchRequest{}
	if o.Request != nil {
		req = &registryv1.WatchRequest{FromIndex: o.Request.GetFromIndex(), Service: o.Request.GetService(), InstancesOnly: o.Request.GetInstancesOnly()}
	}
	var handleErr error
	wait := backoff
	for node := 0; ctx.Err() == nil; node = (node + 1) % len(o.Nodes) {
		received, err := followOne(ctx, o.Nodes[node], req, func(r *registryv1.WatchResponse) error {
			if err := handle(r); err != nil {
				handleErr = err
				return err
			}
			req.FromIndex = r.GetIndex()
			return nil
		})
		if handleErr != nil {
			return handleErr
		}
		if ctx.Err() != nil {
			return nil
		}
		if o.OnError != nil {
			o.OnError(node, err)
		}
		if received {
			wait = backoff
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
	return nil
}

// followOne watches one node until its stream fails; received reports
// whether anything arrived (so the backoff resets).
func followOne(ctx context.Context, c registryv1.RegistryServiceClient, req *registryv1.WatchRequest, handle func(*registryv1.WatchResponse) error) (received bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Watch(ctx, req)
	if err != nil {
		return false, fmt.Errorf("open watch: %w", err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return received, fmt.Errorf("watch from index %d: %w", req.GetFromIndex(), err)
		}
		received = true
		if err := handle(resp); err != nil {
			return received, err
		}
	}
}
