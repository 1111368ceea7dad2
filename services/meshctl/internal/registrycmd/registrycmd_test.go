package registrycmd

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
)

// Flag errors are reported before any connection is attempted.
func TestRegisterRefusesBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"two checks", []string{"-service", "a", "-id", "b", "-address", "10.0.0.1", "-port", "1", "-ttl", "5s", "-tcp-check"}, "at most one of"},
		{"port too big", []string{"-service", "a", "-id", "b", "-address", "10.0.0.1", "-port", "70000"}, "-port"},
		{"bad meta", []string{"-service", "a", "-id", "b", "-address", "10.0.0.1", "-port", "1", "-meta", "novalue"}, "-meta"},
		{"unknown flag", []string{"-nope"}, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Register(context.Background(), tt.args, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if err := Instances(context.Background(), []string{"-health", "sick"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "-health") {
		t.Fatalf("instances -health sick: %v", err)
	}
	if err := Cluster(context.Background(), nil, &bytes.Buffer{}); err == nil {
		t.Fatal("cluster without a subcommand accepted")
	}
}

func TestPrintStatusMarksUnreachableAndLagging(t *testing.T) {
	var b bytes.Buffer
	err := printStatus(&b, &registryv1.ClusterStatusResponse{
		NodeId: "r2", State: "Follower", LeaderId: "r1", Term: 4, LastIndex: 5000, CommitIndex: 5000, AppliedIndex: 5000,
		Peers: []*registryv1.Peer{
			{Id: "r1", RaftAddress: "a:7101", ApiAddress: "a:7100", Voter: true, Leader: true, Reachable: true, State: "Leader", LastIndex: 5000, AppliedIndex: 5000},
			{Id: "r2", Voter: true, Reachable: true, State: "Follower", LastIndex: 5000, AppliedIndex: 3000, Lag: 2000, LastContact: durationpb.New(0)},
			{Id: "r3", Voter: true},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"leader r1", "term 4", "lagging", "unreachable"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
