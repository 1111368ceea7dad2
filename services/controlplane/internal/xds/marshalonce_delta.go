package xds

import (
	"context"
	"sort"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// CreateDeltaWatch implements cache.ConfigWatcher: delta responses, too,
// carry the shared marshalled bytes of the resources that changed.
func (m *MarshalOnce) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, value chan cache.DeltaResponse) (func(), error) {
	inner := make(chan cache.DeltaResponse, 1)
	cancelInner, err := m.SnapshotCache.CreateDeltaWatch(req, sub, inner)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		select {
		case r := <-inner:
			out := m.convertDelta(r, sub)
			select {
			case value <- out:
			case <-done:
			}
		case <-done:
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			if cancelInner != nil {
				cancelInner()
			}
		})
	}, nil
}

// convertDelta rebuilds a raw delta response from the node's snapshot and
// the subscription the cache answered, as go-control-plane computes it: the
// resources whose version differs from what the client has, and the ones it
// has that are gone. If the snapshot moved on meanwhile (a version does not
// match), the raw response is returned and marshals itself.
func (m *MarshalOnce) convertDelta(r cache.DeltaResponse, sub cache.Subscription) cache.DeltaResponse {
	raw, ok := r.(*cache.RawDeltaResponse)
	if !ok {
		return r
	}
	req := raw.GetDeltaRequest()
	snapAny, err := m.SnapshotCache.GetSnapshot(cache.IDHash{}.ID(req.GetNode()))
	if err != nil {
		return r
	}
	typeURL := req.GetTypeUrl()
	versions := snapAny.GetVersionMap(typeURL)
	resources := snapAny.GetResources(typeURL)
	next, prev := raw.GetReturnedResources(), sub.ReturnedResources()

	names := make([]string, 0, len(next))
	for name := range next {
		names = append(names, name)
	}
	sort.Strings(names)
	out := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: raw.GetResponseVersion(), TypeUrl: typeURL}
	for _, name := range names {
		v := next[name]
		if versions[name] != v {
			return r
		}
		if prev[name] == v {
			continue
		}
		res, ok := resources[name]
		if !ok {
			return r
		}
		a, err := m.marshal(typeURL, res)
		if err != nil {
			return r
		}
		out.Resources = append(out.Resources, &discoveryv3.Resource{Name: name, Version: v, Resource: a})
	}
	subscribed := sub.SubscribedResources()
	for name := range prev {
		if _, kept := next[name]; kept {
			continue
		}
		if _, want := subscribed[name]; !sub.IsWildcard() && !want {
			continue
		}
		if _, exists := resources[name]; exists {
			return r
		}
		out.RemovedResources = append(out.RemovedResources, name)
	}
	sort.Strings(out.RemovedResources)
	return &sharedDeltaResponse{req: req, resp: out, next: next, ctx: raw.GetContext()}
}

// sharedDeltaResponse is a delta response built from memoised bytes.
type sharedDeltaResponse struct {
	req  *discoveryv3.DeltaDiscoveryRequest
	resp *discoveryv3.DeltaDiscoveryResponse
	next map[string]string
	ctx  context.Context
}

var _ cache.DeltaResponse = (*sharedDeltaResponse)(nil)

func (s *sharedDeltaResponse) GetDeltaDiscoveryResponse() (*discoveryv3.DeltaDiscoveryResponse, error) {
	return s.resp, nil
}
func (s *sharedDeltaResponse) GetDeltaRequest() *discoveryv3.DeltaDiscoveryRequest { return s.req }
func (s *sharedDeltaResponse) GetSystemVersion() (string, error) {
	return s.resp.GetSystemVersionInfo(), nil
}
func (s *sharedDeltaResponse) GetResponseVersion() string              { return s.resp.GetSystemVersionInfo() }
func (s *sharedDeltaResponse) GetNextVersionMap() map[string]string    { return s.next }
func (s *sharedDeltaResponse) GetReturnedResources() map[string]string { return s.next }
func (s *sharedDeltaResponse) GetContext() context.Context {
	if s.ctx == nil {
		return context.Background()
	}
	return s.ctx
}
