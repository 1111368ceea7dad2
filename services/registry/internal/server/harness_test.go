package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/kit/grpcx"
	"github.com/switchyard-mesh/switchyard/services/kit/run"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/mtls"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/server"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/testutil"
)

// cluster is a real registry cluster on loopback: every node is a full
// server.Node with Raft over mTLS on its own TCP ports, run in-process so
// the test can kill, restart and partition nodes.
type cluster struct {
	t     testing.TB
	ca    *testutil.CA
	tls   server.TLSConfigs
	creds credentials.TransportCredentials
	nodes []*node
	edit  func(*server.Config)
}

type node struct {
	c        *cluster
	id       string
	cfg      server.Config
	grpcAddr string
	raftAddr string
	net      *cutNet

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan error
	srv    *server.Node
	conn   *grpc.ClientConn
}

func newCluster(t *testing.T, n int, edit func(*server.Config)) *cluster {
	t.Helper()
	return newClusterTB(t, n, edit)
}

func newClusterTB(t testing.TB, n int, edit func(*server.Config)) *cluster {
	t.Helper()
	ca := testutil.NewCA(t)
	cert, key := ca.Issue(t, "registry", mtls.RegistryID)
	tlsc, err := server.FilesTLS(server.TLSConfig{CertFile: cert, KeyFile: key, CAFile: ca.BundleFile()})
	if err != nil {
		t.Fatal(err)
	}
	ccert, ckey := ca.Issue(t, "client", "spiffe://switchyard.local/system/meshctl")
	m, err := mtls.LoadFiles(ccert, ckey, ca.BundleFile())
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, ca: ca, tls: tlsc, creds: credentials.NewTLS(m.ClientConfig(mtls.AllowIDs(mtls.RegistryID))), edit: edit}
	var bootstrap []string
	for i := range n {
		nd := &node{c: c, id: fmt.Sprintf("r%d", i+1), grpcAddr: freeAddr(t), raftAddr: freeAddr(t), net: newCutNet()}
		bootstrap = append(bootstrap, nd.id+"="+nd.raftAddr)
		c.nodes = append(c.nodes, nd)
	}
	dir := t.TempDir()
	for _, nd := range c.nodes {
		cfg := server.DefaultConfig()
		cfg.NodeID = nd.id
		cfg.DataDir = filepath.Join(dir, nd.id)
		cfg.GRPC.Addr, cfg.Raft.Addr = nd.grpcAddr, nd.raftAddr
		cfg.Raft.Bootstrap = bootstrap
		cfg.Drain = 200 * time.Millisecond
		cfg.Health.Tick = 50 * time.Millisecond
		if edit != nil {
			edit(&cfg)
		}
		nd.cfg = cfg
	}
	for _, nd := range c.nodes {
		nd.start()
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.stop()
		}
	})
	return c
}

// handedOut holds the ports freeAddr returned: they are closed again until
// a node binds them, so a later pick could otherwise find the same one
// free (two nodes of one cluster with one Raft address fail to bootstrap).
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freeAddr picks a free loopback port below the kernel's ephemeral range
// (32768+), so that no outgoing connection takes it between now and a
// node's restart, and never the same port twice in one test process.
func freeAddr(t testing.TB) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		port := 20000 + rand.IntN(12000)
		if handedOut.ports[port] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			handedOut.ports[port] = true
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

func testLogger(id string) *slog.Logger {
	if os.Getenv("REGISTRY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", id)
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// addNode creates (without starting) a node that joins the running
// cluster through the given nodes instead of bootstrapping.
func (c *cluster) addNode(id string, joinVia ...*node) *node {
	nd := &node{c: c, id: id, grpcAddr: freeAddr(c.t), raftAddr: freeAddr(c.t), net: newCutNet()}
	cfg := c.nodes[0].cfg
	cfg.NodeID = id
	cfg.DataDir = filepath.Join(filepath.Dir(cfg.DataDir), id)
	cfg.GRPC.Addr, cfg.Raft.Addr = nd.grpcAddr, nd.raftAddr
	cfg.Raft.Bootstrap = nil
	cfg.Raft.Join = nil
	for _, j := range joinVia {
		cfg.Raft.Join = append(cfg.Raft.Join, j.grpcAddr)
	}
	nd.cfg = cfg
	c.nodes = append(c.nodes, nd)
	return nd
}

// start runs the node (again, with its data dir after a stop).
func (nd *node) start() {
	t := nd.c.t
	t.Helper()
	var glnErr, rlnErr error
	var gln, rln net.Listener
	for range 50 { // the port may linger briefly after a stop
		gln, glnErr = net.Listen("tcp", nd.grpcAddr)
		rln, rlnErr = net.Listen("tcp", nd.raftAddr)
		if glnErr == nil && rlnErr == nil {
			break
		}
		if gln != nil {
			gln.Close()
		}
		if rln != nil {
			rln.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	if glnErr != nil || rlnErr != nil {
		t.Fatalf("listen for %s: %v %v", nd.id, glnErr, rlnErr)
	}
	srv, err := server.New(nd.cfg, server.Parts{
		Log: testLogger(nd.id), Metrics: prometheus.NewRegistry(), TLS: nd.c.tls,
		GRPCListener: gln, RaftListener: nd.net.listener(rln), RaftDial: nd.net.dial,
	})
	if err != nil {
		t.Fatalf("start %s: %v", nd.id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.Group(ctx, srv.Tasks()...) }()
	conn, err := grpcx.Dial(nd.grpcAddr, nd.c.creds)
	if err != nil {
		t.Fatal(err)
	}
	nd.mu.Lock()
	nd.cancel, nd.done, nd.srv, nd.conn = cancel, done, srv, conn
	nd.mu.Unlock()
}

// stop shuts the node down (like SIGTERM: Raft stops, sockets close).
func (nd *node) stop() {
	nd.mu.Lock()
	cancel, done, conn := nd.cancel, nd.done, nd.conn
	nd.cancel = nil
	nd.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	nd.net.closeAll()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		nd.c.t.Errorf("node %s stopped with %v", nd.id, err)
	}
	_ = conn.Close()
}

func (nd *node) running() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.cancel != nil
}

func (nd *node) client() registryv1.RegistryServiceClient {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return registryv1.NewRegistryServiceClient(nd.conn)
}

func (nd *node) clusterClient() registryv1.ClusterServiceClient {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return registryv1.NewClusterServiceClient(nd.conn)
}

// leader waits for a node that reports itself as leader and returns it.
func (c *cluster) leader(timeout time.Duration) *node {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, nd := range c.nodes {
			if !nd.running() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			st, err := nd.clusterClient().ClusterStatus(ctx, &registryv1.ClusterStatusRequest{Local: true})
			cancel()
			if err != nil && os.Getenv("REGISTRY_TEST_LOG") != "" {
				c.t.Logf("status of %s: %v", nd.id, err)
			}
			if err == nil && st.GetState() == "Leader" {
				// Wait until it has announced itself, so forwarding works.
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_, err := nd.client().ListServices(ctx, &registryv1.ListServicesRequest{})
				cancel()
				if err == nil {
					return nd
				}
				if os.Getenv("REGISTRY_TEST_LOG") != "" {
					c.t.Logf("list on leader %s: %v", nd.id, err)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("no leader within %s", timeout)
	return nil
}

func (c *cluster) followers(leader *node) []*node {
	var out []*node
	for _, nd := range c.nodes {
		if nd != leader {
			out = append(out, nd)
		}
	}
	return out
}

// cutNet lets a test partition a node: while cut, its Raft listener drops
// every connection and its dials fail, and cutting closes the open ones.
type cutNet struct {
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

func newCutNet() *cutNet { return &cutNet{conns: map[net.Conn]struct{}{}} }

func (cn *cutNet) setCut(cut bool) {
	cn.mu.Lock()
	cn.cut = cut
	cn.mu.Unlock()
	if cut {
		cn.closeAll()
	}
}

func (cn *cutNet) closeAll() {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	for c := range cn.conns {
		_ = c.Close()
		delete(cn.conns, c)
	}
}

func (cn *cutNet) track(c net.Conn) (net.Conn, bool) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.cut {
		_ = c.Close()
		return nil, false
	}
	cn.conns[c] = struct{}{}
	return c, true
}

func (cn *cutNet) dial(address string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", address, timeout)
	if err != nil {
		return nil, err
	}
	if c, ok := cn.track(c); ok {
		return c, nil
	}
	return nil, errors.New("network cut")
}

func (cn *cutNet) listener(ln net.Listener) net.Listener { return &cutListener{Listener: ln, cn: cn} }

type cutListener struct {
	net.Listener
	cn *cutNet
}

func (l *cutListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c, ok := l.cn.track(c); ok {
			return c, nil
		}
	}
}

// workloadTLS is a client config for a non-registry SPIFFE ID.
func (c *cluster) workloadTLS(id string) *tls.Config {
	cert, key := c.ca.Issue(c.t, "wl", id)
	m, err := mtls.LoadFiles(cert, key, c.ca.BundleFile())
	if err != nil {
		c.t.Fatal(err)
	}
	return m.ClientConfig(mtls.AllowTrustDomain(mtls.TrustDomain))
}
