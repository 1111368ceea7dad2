package api

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard-mesh/switchyard/services/kit/meshconfig"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/catalog"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/health"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/raftnode"
)

// notLeaderMsg starts the message of every status saying "ask the leader":
// a forwarding node retries those, and only those, once a leader is known.
const notLeaderMsg = "not the leader"

// toStatus maps an error to the gRPC status a client can branch on.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var fe *catalog.FieldError
	var mfe *meshconfig.FieldError
	switch {
	case errors.As(err, &fe), errors.As(err, &mfe):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, catalog.ErrConflict):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, catalog.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, raftnode.ErrNotLeader), errors.Is(err, health.ErrNotLeader):
		return status.Error(codes.Unavailable, notLeaderMsg+": "+err.Error())
	case errors.Is(err, raftnode.ErrNoLeader), errors.Is(err, raftnode.ErrUnknownOutcome):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return status.FromContextError(err).Err()
	default:
		return status.Error(codes.Internal, err.Error())
	}
}

func isNotLeader(err error) bool {
	s, ok := status.FromError(err)
	return ok && s.Code() == codes.Unavailable && strings.HasPrefix(s.Message(), notLeaderMsg)
}
