package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
)

// maxHTTPBody caps request bodies on the HTTP API.
const maxHTTPBody = 1 << 20

// HTTPHandler is the operator's HTTP/JSON API, served on the admin port.
// It calls the same code as the gRPC API, so validation, forwarding and
// consistency are identical. Bodies and answers are the proto messages in
// protojson form (snake_case field names).
//
//	GET  /v1/catalog/services                 ListServices   (?stale=true)
//	GET  /v1/catalog/service/{service}        GetService     (?stale, ?health=passing)
//	GET  /v1/catalog/instances                ListInstances  (?service, ?region, ?health, ?stale)
//	POST /v1/register                         Register       (body: Instance)
//	POST /v1/deregister/{service}/{id}        Deregister
//	POST /v1/heartbeat/{service}/{id}         Heartbeat
//	GET  /v1/config                           ListConfig     (?kind, ?stale)
//	GET  /v1/config/{kind}/{name}             GetConfig      (?stale)
//	GET  /v1/cluster/status                   ClusterStatus
//
// The admin port is plaintext, so writes (POST) are guarded: with a
// writeToken they need "Authorization: Bearer <writeToken>"; without one
// they are accepted from loopback clients only.
func HTTPHandler(reg *Registry, cl *Cluster, writeToken string) http.Handler {
	r := chi.NewRouter()
	r.Use(guardWrites(writeToken))
	r.Get("/v1/catalog/services", handle(func(ctx context.Context, q httpRequest) (proto.Message, error) {
		return reg.ListServices(ctx, &registryv1.ListServicesRequest{Read: q.read()})
	}))
	r.Get("/v1/catalog/service/{service}", handle(func(ctx context.Context, q httpRequest) (proto.Message, error) {
		return reg.GetService(ctx, &registryv1.GetServiceRequest{Service: q.param("service"), Read: q.read(), Health: q.health()})
	}))
	r.Get("/v1/catalog/instances", handle(func(ctx context.Context, q httpRequest) (proto.Message, error) {
		return reg.ListInstances(ctx, &registryv1.ListInstancesRequest{
			Read: q.read(), Service: q.query("service"), Region: q.query("region"), Health: q.health(),
		})
	}))
	r.Post("/v1/register", handle(func(ctx context.Context, q httpRequest) (proto.Message, error) {
		in := &registryv1.Instance{}
		if err := q.body(in); err != nil {
			return nil, err
		}
		return reg.Register(ctx, &registryv1.RegisterRequest{Instance: in})
	}))
	r.Post("/v1/deregister/{service}/{id}", handle(func(ctx context.Context, q httpRequest) (proto.Message, error) {
		return reg.Deregister(ctx, &registryv1.DeregisterRequest{Service: q.param("service"), Id: q.param("id")})
	}))
	r.Post("/v1/heartbeat/{service}/{id}", handle(func(ctx context.Context, q httpRequest) (proto.Message, error) {
		return reg.Heartbeat(ctx, &registryv1.HeartbeatRequest{Service: q.param("service"), Id: q.param("id")})
	}))
	r.Get("/v1/config", handle(func(ctx context.Context, q httpRequest) (proto.Message, error) {
		return reg.ListConfig(ctx, &registryv1.ListConfigRequest{Kind: q.query("kind"), Read: q.read()})
	}))
	r.Get("/v1/config/{kind}/{name}", handle(func(ctx context.Context, q httpRequest) (proto.Message, error) {
		return reg.GetConfig(ctx, &registryv1.GetConfigRequest{Kind: q.param("kind"), Name: q.param("name"), Read: q.read()})
	}))
	r.Get("/v1/cluster/status", handle(func(ctx context.Context, _ httpRequest) (proto.Message, error) {
		return cl.ClusterStatus(ctx, &registryv1.ClusterStatusRequest{})
	}))
	return r
}

// guardWrites refuses state-changing requests that lack the write token,
// or, with no token configured, that come from another host.
func guardWrites(token string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				next.ServeHTTP(w, r)
				return
			}
			var err error
			switch {
			case token != "":
				got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
				if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
					err = status.Error(codes.Unauthenticated, "writes need the header Authorization: Bearer <http.write_token>")
				}
			case !loopback(r.RemoteAddr):
				err = status.Error(codes.PermissionDenied, "writes from other hosts need http.write_token set on the registry and sent as Authorization: Bearer <token>; or use the mTLS gRPC API (meshctl)")
			}
			if err != nil {
				handle(func(context.Context, httpRequest) (proto.Message, error) { return nil, err })(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func loopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type httpRequest struct{ r *http.Request }

func (q httpRequest) param(name string) string { return chi.URLParam(q.r, name) }
func (q httpRequest) query(name string) string { return q.r.URL.Query().Get(name) }

func (q httpRequest) read() *registryv1.ReadOptions {
	stale, _ := strconv.ParseBool(q.query("stale"))
	return &registryv1.ReadOptions{Stale: stale}
}

func (q httpRequest) health() registryv1.HealthStatus {
	switch q.query("health") {
	case "passing":
		return registryv1.HealthStatus_HEALTH_STATUS_PASSING
	case "warning":
		return registryv1.HealthStatus_HEALTH_STATUS_WARNING
	case "critical":
		return registryv1.HealthStatus_HEALTH_STATUS_CRITICAL
	default:
		return registryv1.HealthStatus_HEALTH_STATUS_UNSPECIFIED
	}
}

func (q httpRequest) body(m proto.Message) error {
	b, err := io.ReadAll(io.LimitReader(q.r.Body, maxHTTPBody+1))
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "read body: %v", err)
	}
	if len(b) > maxHTTPBody {
		return status.Errorf(codes.InvalidArgument, "body: larger than %d bytes", maxHTTPBody)
	}
	if err := protojson.Unmarshal(b, m); err != nil {
		return status.Errorf(codes.InvalidArgument, "body: %v", err)
	}
	return nil
}

func handle(fn func(ctx context.Context, q httpRequest) (proto.Message, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		msg, err := fn(r.Context(), httpRequest{r: r})
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			st, _ := status.FromError(err)
			w.WriteHeader(httpStatus(st.Code()))
			_ = json.NewEncoder(w).Encode(map[string]string{"code": st.Code().String(), "error": st.Message()})
			return
		}
		b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false}.Marshal(msg)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(b)
	}
}

func httpStatus(c codes.Code) int {
	switch c {
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.FailedPrecondition:
		return http.StatusConflict
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Canceled:
		return 499
	default:
		return http.StatusInternalServerError
	}
}
