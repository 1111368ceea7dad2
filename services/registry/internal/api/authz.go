package api

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Who may do what, by SPIFFE ID. Any workload of the trust domain may
// register, heartbeat and read (the mTLS handshake already proved it is
// one); config documents are written by system components only (meshctl,
// the control plane); membership is changed by registry nodes (announcing
// themselves) and meshctl only.
const (
	systemPrefix = "spiffe://switchyard.local/system/"
	registryID   = systemPrefix + "registry"
	meshctlID    = systemPrefix + "meshctl"
)

// callerID is the SPIFFE ID of a gRPC caller; ok is false for calls that
// did not come over mTLS (the HTTP API on the admin port calls in-process).
func callerID(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return "", false
	}
	for _, u := range info.State.PeerCertificates[0].URIs {
		if u.Scheme == "spiffe" {
			return u.String(), true
		}
	}
	return "", true
}

// allow refuses a gRPC caller whose SPIFFE ID fails ok.
func allow(ctx context.Context, what string, ok func(id string) bool) error {
	id, overTLS := callerID(ctx)
	if !overTLS || ok(id) {
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "%s: caller %q may not (allowed: %s)", what, id, allowedText[what])
}

var allowedText = map[string]string{
	"write config":      systemPrefix + "*",
	"change membership": registryID + ", " + meshctlID,
}

func systemCaller(id string) bool { return strings.HasPrefix(id, systemPrefix) }

func membershipCaller(id string) bool { return id == registryID || id == meshctlID }
