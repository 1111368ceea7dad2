package xds

import (
	"context"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// MarshalOnce wraps go-control-plane's snapshot cache so that responses —
// state-of-the-world and delta — carry each resource marshalled once,
// shared by every proxy whose snapshot holds the same resource object,
// instead of marshalled again for every response. The translator shares
// resource objects between proxies (translate.World), so a push of one
// changed ClusterLoadAssignment to 1,000 proxies marshals it once, not 1,000
// times. Anything it cannot rebuild exactly is passed through unchanged.
type MarshalOnce struct {
	cache.SnapshotCache

	mu   sync.RWMutex
	memo map[types.Resource]*anypb.Any
}

// NewMarshalOnce wraps c.
func NewMarshalOnce(c cache.SnapshotCache) *MarshalOnce {
	return &MarshalOnce{SnapshotCache: c, memo: map[types.Resource]*anypb.Any{}}
}

// Reset forgets marshalled resources; call it when the resource objects
// are rebuilt. In-flight responses still hold their bytes.
func (m *MarshalOnce) Reset() {
	m.mu.Lock()
	m.memo = map[types.Resource]*anypb.Any{}
	m.mu.Unlock()
}

// CreateWatch implements cache.ConfigWatcher.
func (m *MarshalOnce) CreateWatch(req *cache.Request, sub cache.Subscription, value chan cache.Response) (func(), error) {
	inner := make(chan cache.Response, 1)
	cancelInner, err := m.SnapshotCache.CreateWatch(req, sub, inner)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		select {
		case r := <-inner:
			out := m.convert(r)
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

// convert replaces a raw response by one built from memoised bytes; on any
// failure it returns the raw response, which marshals itself.
func (m *MarshalOnce) convert(r cache.Response) cache.Response {
	raw, ok := r.(*cache.RawResponse)
	if !ok || raw.Heartbeat {
		return r
	}
	typeURL := raw.GetRequest().GetTypeUrl()
	resources := raw.GetRawResources()
	anys := make([]*anypb.Any, 0, len(resources))
	for _, res := range resources {
		if res.TTL != nil {
			return r
		}
		a, err := m.marshal(typeURL, res.Resource)
		if err != nil {
			return r
		}
		anys = append(anys, a)
	}
	return &sharedResponse{
		req:      raw.GetRequest(),
		version:  raw.GetResponseVersion(),
		returned: raw.GetReturnedResources(),
		ctx:      raw.GetContext(),
		resp:     &discoveryv3.DiscoveryResponse{VersionInfo: raw.GetResponseVersion(), Resources: anys, TypeUrl: typeURL},
	}
}

func (m *MarshalOnce) marshal(typeURL string, res types.Resource) (*anypb.Any, error) {
	m.mu.RLock()
	a, ok := m.memo[res]
	m.mu.RUnlock()
	if ok {
		return a, nil
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(res)
	if err != nil {
		return nil, err
	}
	a = &anypb.Any{TypeUrl: typeURL, Value: b}
	m.mu.Lock()
	m.memo[res] = a
	m.mu.Unlock()
	return a, nil
}

// Memoised reports how many resources are held marshalled.
func (m *MarshalOnce) Memoised() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.memo)
}

// sharedResponse is a SotW response whose resources are already marshalled.
type sharedResponse struct {
	req      *discoveryv3.DiscoveryRequest
	resp     *discoveryv3.DiscoveryResponse
	version  string
	returned map[string]string
	ctx      context.Context
}

var _ cache.Response = (*sharedResponse)(nil)

func (s *sharedResponse) GetDiscoveryResponse() (*discoveryv3.DiscoveryResponse, error) {
	return s.resp, nil
}
func (s *sharedResponse) GetRequest() *discoveryv3.DiscoveryRequest { return s.req }
func (s *sharedResponse) GetVersion() (string, error)               { return s.version, nil }
func (s *sharedResponse) GetResponseVersion() string                { return s.version }
func (s *sharedResponse) GetReturnedResources() map[string]string   { return s.returned }
func (s *sharedResponse) GetContext() context.Context {
	if s.ctx == nil {
		return context.Background()
	}
	return s.ctx
}
