package api

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/catalog"
)

// AddVoter implements ClusterService.
func (c *Cluster) AddVoter(ctx context.Context, req *registryv1.AddVoterRequest) (*registryv1.AddVoterResponse, error) {
	if err := allow(ctx, "change membership", membershipCaller); err != nil {
		return nil, err
	}
	if req.GetId() == "" {
		return nil, toStatus(&catalog.FieldError{Field: "id", Reason: "is empty"})
	}
	if req.GetRaftAddress() == "" {
		return nil, toStatus(&catalog.FieldError{Field: "raft_address", Reason: "is empty"})
	}
	return onLeader(ctx, c.fwd, func(context.Context) (*registryv1.AddVoterResponse, error) {
		idx, err := c.node.AddVoter(req.GetId(), req.GetRaftAddress(), req.GetApiAddress())
		if err != nil {
			return nil, err
		}
		return &registryv1.AddVoterResponse{Index: idx}, nil
	}, func(ctx context.Context, cc *grpc.ClientConn) (*registryv1.AddVoterResponse, error) {
		return registryv1.NewClusterServiceClient(cc).AddVoter(ctx, req)
	})
}

// RemoveServer implements ClusterService.
func (c *Cluster) RemoveServer(ctx context.Context, req *registryv1.RemoveServerRequest) (*registryv1.RemoveServerResponse, error) {
	if err := allow(ctx, "change membership", membershipCaller); err != nil {
		return nil, err
	}
	if req.GetId() == "" {
		return nil, toStatus(&catalog.FieldError{Field: "id", Reason: "is empty"})
	}
	return onLeader(ctx, c.fwd, func(context.Context) (*registryv1.RemoveServerResponse, error) {
		idx, err := c.node.RemoveServer(req.GetId())
		if err != nil {
			return nil, err
		}
		return &registryv1.RemoveServerResponse{Index: idx}, nil
	}, func(ctx context.Context, cc *grpc.ClientConn) (*registryv1.RemoveServerResponse, error) {
		return registryv1.NewClusterServiceClient(cc).RemoveServer(ctx, req)
	})
}

// peerTimeout bounds asking one peer for its status.
const peerTimeout = time.Second

// ClusterStatus implements ClusterService: this node's view of the Raft
// configuration, with each peer's own indexes (asked over the API, as
// Consul's autopilot does) and its lag behind the leader's last index.
func (c *Cluster) ClusterStatus(ctx context.Context, req *registryv1.ClusterStatusRequest) (*registryv1.ClusterStatusResponse, error) {
	st, err := c.node.Status()
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &registryv1.ClusterStatusResponse{
		NodeId: st.ID, State: st.State, LeaderId: st.LeaderID, LeaderAddress: st.LeaderAddress,
		Term: st.Term, LastIndex: st.LastIndex, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex,
	}
	if req.GetLocal() {
		if st.State != "Leader" && !st.LastContact.IsZero() {
			resp.Peers = []*registryv1.Peer{{Id: st.ID, LastContact: durationpb.New(time.Since(st.LastContact))}}
		}
		return resp, nil
	}
	peers := make([]*registryv1.Peer, len(st.Servers))
	var wg sync.WaitGroup
	for i, s := range st.Servers {
		p := &registryv1.Peer{Id: s.ID, RaftAddress: s.Address, ApiAddress: s.APIAddress, Voter: s.Voter, Leader: s.ID == st.LeaderID}
		peers[i] = p
		if s.ID == st.ID {
			p.Reachable, p.State, p.LastIndex, p.AppliedIndex = true, st.State, st.LastIndex, st.AppliedIndex
			if st.State != "Leader" && !st.LastContact.IsZero() {
				p.LastContact = durationpb.New(time.Since(st.LastContact))
			}
			continue
		}
		if s.APIAddress == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.askPeer(ctx, p)
		}()
	}
	wg.Wait()
	var head uint64
	for _, p := range peers {
		if p.Leader && p.Reachable {
			head = p.LastIndex
		}
	}
	if head == 0 {
		for _, p := range peers {
			head = max(head, p.LastIndex)
		}
	}
	for _, p := range peers {
		if p.Reachable && head > p.AppliedIndex {
			p.Lag = head - p.AppliedIndex
		}
	}
	resp.Peers = peers
	return resp, nil
}

func (c *Cluster) askPeer(ctx context.Context, p *registryv1.Peer) {
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	cc, err := c.fwd.conn(p.ApiAddress)
	if err != nil {
		return
	}
	r, err := registryv1.NewClusterServiceClient(cc).ClusterStatus(ctx, &registryv1.ClusterStatusRequest{Local: true})
	if err != nil {
		return
	}
	p.Reachable, p.State, p.LastIndex, p.AppliedIndex = true, r.GetState(), r.GetLastIndex(), r.GetAppliedIndex()
	if len(r.GetPeers()) == 1 {
		p.LastContact = r.GetPeers()[0].GetLastContact()
	}
}
