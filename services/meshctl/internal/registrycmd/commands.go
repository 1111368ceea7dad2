package registrycmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/meshctl/internal/cliflags"
)

// Command is one meshctl subcommand.
type Command struct {
	Name    string
	Summary string
	Run     func(ctx context.Context, args []string, stdout io.Writer) error
}

// Commands lists the registry commands for meshctl's command table.
func Commands() []Command {
	return []Command{
		{"services", "services [-stale]: every service with its instance and health counts", Services},
		{"instances", "instances [-service S] [-region R] [-health passing|critical] [-stale]: registered instances", Instances},
		{"register", "register -service S -id ID -address A -port P [-ttl D | -http-check PATH | -tcp-check | -grpc-check SVC]: register an instance", Register},
		{"deregister", "deregister -service S -id ID: remove an instance", Deregister},
		{"cluster", "cluster status | join -id ID -raft-address A [-api-address A] | remove -id ID: Raft membership", Cluster},
	}
}

func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func health(h registryv1.HealthStatus) string {
	return strings.ToLower(strings.TrimPrefix(h.String(), "HEALTH_STATUS_"))
}

func parseHealth(s string) (registryv1.HealthStatus, error) {
	switch s {
	case "":
		return registryv1.HealthStatus_HEALTH_STATUS_UNSPECIFIED, nil
	case "passing":
		return registryv1.HealthStatus_HEALTH_STATUS_PASSING, nil
	case "warning":
		return registryv1.HealthStatus_HEALTH_STATUS_WARNING, nil
	case "critical":
		return registryv1.HealthStatus_HEALTH_STATUS_CRITICAL, nil
	}
	return 0, fmt.Errorf("-health: %q is not passing, warning or critical", s)
}

// Services prints every service.
func Services(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlags("services")
	stale := fs.Bool("stale", false, "read from the node asked, without the leader")
	if err := cliflags.Parse(fs, args); err != nil {
		return err
	}
	reg, done, err := c.registryClient(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := reg.ListServices(ctx, &registryv1.ListServicesRequest{Read: &registryv1.ReadOptions{Stale: *stale}})
	if err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	if c.output == "json" {
		return printJSON(stdout, resp)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tINSTANCES\tPASSING\tCRITICAL\tREGIONS\tTAGS")
	for _, s := range resp.GetServices() {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", s.GetName(), s.GetInstances(), s.GetPassing(), s.GetCritical(),
			strings.Join(s.GetRegions(), ","), strings.Join(s.GetTags(), ","))
	}
	return tw.Flush()
}

// Instances prints registered instances.
func Instances(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlags("instances")
	stale := fs.Bool("stale", false, "read from the node asked, without the leader")
	service := fs.String("service", "", "only this service")
	region := fs.String("region", "", "only this region")
	h := fs.String("health", "", "only this health: passing, warning, critical")
	if err := cliflags.Parse(fs, args); err != nil {
		return err
	}
	hs, err := parseHealth(*h)
	if err != nil {
		return err
	}
	reg, done, err := c.registryClient(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := reg.ListInstances(ctx, &registryv1.ListInstancesRequest{
		Read: &registryv1.ReadOptions{Stale: *stale}, Service: *service, Region: *region, Health: hs,
	})
	if err != nil {
		return fmt.Errorf("list instances: %w", err)
	}
	if c.output == "json" {
		return printJSON(stdout, resp)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tID\tADDRESS\tREGION\tHEALTH\tCHECK\tTAGS\tOUTPUT")
	for _, in := range resp.GetInstances() {
		check := strings.ToLower(strings.TrimPrefix(in.GetCheck().GetType().String(), "CHECK_TYPE_"))
		fmt.Fprintf(tw, "%s\t%s\t%s:%d\t%s\t%s\t%s\t%s\t%s\n", in.GetService(), in.GetId(), in.GetAddress(), in.GetPort(),
			in.GetLocality().GetRegion(), health(in.GetHealth()), check, strings.Join(in.GetTags(), ","), in.GetHealthOutput())
	}
	return tw.Flush()
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// Register registers one instance.
func Register(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlags("register")
	in := &registryv1.Instance{Locality: &registryv1.Locality{}}
	var port uint
	var tags, meta listFlag
	var ttl, interval, timeout, deregAfter time.Duration
	var httpPath, grpcService string
	var tcp bool
	fs.StringVar(&in.Service, "service", "", "service name")
	fs.StringVar(&in.Id, "id", "", "instance ID")
	fs.StringVar(&in.Address, "address", "", "IP address or DNS name")
	fs.UintVar(&port, "port", 0, "port")
	fs.StringVar(&in.Locality.Region, "region", "", "region")
	fs.StringVar(&in.Locality.Zone, "zone", "", "zone")
	fs.Var(&tags, "tag", "tag (repeatable)")
	fs.Var(&meta, "meta", "metadata key=value (repeatable)")
	fs.DurationVar(&ttl, "ttl", 0, "TTL check: the instance must heartbeat within this")
	fs.StringVar(&httpPath, "http-check", "", "HTTP check: GET this path on address:port")
	fs.BoolVar(&tcp, "tcp-check", false, "TCP check: connect to address:port")
	fs.StringVar(&grpcService, "grpc-check", "", "gRPC health check of this service name ('-' for the server)")
	fs.DurationVar(&interval, "interval", 0, "active check interval (default 10s)")
	fs.DurationVar(&timeout, "timeout", 0, "active check timeout (default 2s)")
	fs.DurationVar(&deregAfter, "deregister-after", 0, "remove the instance after it is critical this long")
	if err := cliflags.Parse(fs, args); err != nil {
		return err
	}
	if port > 65535 {
		return fmt.Errorf("-port: %d is not a port", port)
	}
	in.Port = uint32(port)
	in.Tags = tags
	for _, kv := range meta {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("-meta: %q is not key=value", kv)
		}
		if in.Metadata == nil {
			in.Metadata = map[string]string{}
		}
		in.Metadata[k] = v
	}
	check := &registryv1.HealthCheck{DeregisterCriticalAfter: optDur(deregAfter), Interval: optDur(interval), Timeout: optDur(timeout)}
	n := 0
	if ttl > 0 {
		check.Type, check.Ttl = registryv1.CheckType_CHECK_TYPE_TTL, durationpb.New(ttl)
		n++
	}
	if httpPath != "" {
		check.Type, check.HttpPath = registryv1.CheckType_CHECK_TYPE_HTTP, httpPath
		n++
	}
	if tcp {
		check.Type = registryv1.CheckType_CHECK_TYPE_TCP
		n++
	}
	if grpcService != "" {
		check.Type = registryv1.CheckType_CHECK_TYPE_GRPC
		if grpcService != "-" {
			check.GrpcService = grpcService
		}
		n++
	}
	if n > 1 {
		return errors.New("give at most one of -ttl, -http-check, -tcp-check, -grpc-check")
	}
	in.Check = check
	reg, done, err := c.registryClient(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := reg.Register(ctx, &registryv1.RegisterRequest{Instance: in})
	if err != nil {
		return fmt.Errorf("register %s/%s: %w", in.GetService(), in.GetId(), err)
	}
	fmt.Fprintf(stdout, "registered %s/%s (index %d)\n", in.GetService(), in.GetId(), resp.GetIndex())
	return nil
}

func optDur(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

// Deregister removes one instance.
func Deregister(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlags("deregister")
	service := fs.String("service", "", "service name")
	id := fs.String("id", "", "instance ID")
	if err := cliflags.Parse(fs, args); err != nil {
		return err
	}
	reg, done, err := c.registryClient(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := reg.Deregister(ctx, &registryv1.DeregisterRequest{Service: *service, Id: *id})
	if err != nil {
		return fmt.Errorf("deregister %s/%s: %w", *service, *id, err)
	}
	fmt.Fprintf(stdout, "deregistered %s/%s (index %d)\n", *service, *id, resp.GetIndex())
	return nil
}

// Cluster runs cluster status, join and remove.
func Cluster(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("cluster: give status, join or remove")
	}
	sub, args := args[0], args[1:]
	fs, c := newFlags("cluster " + sub)
	id := fs.String("id", "", "node ID")
	raftAddr := fs.String("raft-address", "", "the node's Raft address (join)")
	apiAddr := fs.String("api-address", "", "the node's gRPC address (join)")
	if err := cliflags.Parse(fs, args); err != nil {
		return err
	}
	cl, done, err := c.cluster(ctx)
	if err != nil {
		return err
	}
	defer done()
	switch sub {
	case "status":
		resp, err := cl.ClusterStatus(ctx, &registryv1.ClusterStatusRequest{})
		if err != nil {
			return fmt.Errorf("cluster status: %w", err)
		}
		if c.output == "json" {
			return printJSON(stdout, resp)
		}
		return printStatus(stdout, resp)
	case "join":
		resp, err := cl.AddVoter(ctx, &registryv1.AddVoterRequest{Id: *id, RaftAddress: *raftAddr, ApiAddress: *apiAddr})
		if err != nil {
			return fmt.Errorf("add voter %s: %w", *id, err)
		}
		fmt.Fprintf(stdout, "%s is a voter (index %d)\n", *id, resp.GetIndex())
		return nil
	case "remove":
		resp, err := cl.RemoveServer(ctx, &registryv1.RemoveServerRequest{Id: *id})
		if err != nil {
			return fmt.Errorf("remove server %s: %w", *id, err)
		}
		fmt.Fprintf(stdout, "%s removed (index %d)\n", *id, resp.GetIndex())
		return nil
	default:
		return fmt.Errorf("cluster: unknown subcommand %q (status, join, remove)", sub)
	}
}

// lagWarn marks a peer this many entries behind the leader as lagging.
const lagWarn = 1000

func printStatus(w io.Writer, s *registryv1.ClusterStatusResponse) error {
	leader := s.GetLeaderId()
	if leader == "" {
		leader = "(none: no quorum or election in progress)"
	}
	fmt.Fprintf(w, "answered by %s (%s), term %d, leader %s\n", s.GetNodeId(), s.GetState(), s.GetTerm(), leader)
	fmt.Fprintf(w, "last index %d, commit index %d, applied index %d\n\n", s.GetLastIndex(), s.GetCommitIndex(), s.GetAppliedIndex())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRAFT ADDRESS\tAPI ADDRESS\tVOTER\tSTATE\tLAST INDEX\tAPPLIED\tLAG\tLAST CONTACT\tNOTE")
	for _, p := range s.GetPeers() {
		state, note := p.GetState(), ""
		switch {
		case !p.GetReachable():
			state, note = "unreachable", "did not answer"
		case p.GetLag() >= lagWarn:
			note = "lagging"
		}
		contact := "-"
		if p.GetLastContact() != nil {
			contact = p.GetLastContact().AsDuration().Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%d\t%d\t%d\t%s\t%s\n", p.GetId(), p.GetRaftAddress(), p.GetApiAddress(),
			p.GetVoter(), state, p.GetLastIndex(), p.GetAppliedIndex(), p.GetLag(), contact, note)
	}
	return tw.Flush()
}
