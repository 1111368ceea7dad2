package configcmd

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func isNotFound(err error) bool { return err != nil && status.Code(err) == codes.NotFound }
