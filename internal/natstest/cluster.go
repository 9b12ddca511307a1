package natstest

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/embednats"
)

// clusterReadyTimeout bounds the wait for a JetStream meta leader that
// knows every peer. Elections take a few seconds on a busy machine.
const clusterReadyTimeout = 30 * time.Second

// ClusterName is the route cluster name StartCluster gives its nodes.
const ClusterName = "digitoll"

// StartCluster starts n (at least 3, the smallest cluster that survives the
// loss of a node) embedded servers on loopback that form one JetStream
// cluster, each with its own store under baseDir/node-<i> and a random
// client port. It returns once the cluster has a JetStream meta leader that
// sees all n peers. On error every node it started is shut down.
//
// The route ports are chosen by listening on 127.0.0.1:0 and closing the
// listeners just before the servers start: every node must know every
// other node's route URL up front, which a server picking its own random
// port cannot give. Another process could take a port in that instant; the
// start then fails and can be retried.
func StartCluster(n int, baseDir string, logger *slog.Logger) ([]*embednats.Server, error) {
	if n < 3 {
		return nil, fmt.Errorf("natstest: a JetStream cluster needs at least 3 nodes, got %d", n)
	}
	if baseDir == "" {
		return nil, errors.New("natstest: StartCluster needs a base directory for the stores")
	}
	ports, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	routes := make([]*url.URL, n)
	for i, p := range ports {
		routes[i] = &url.URL{Scheme: "nats-route", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p))}
	}
	servers := make([]*embednats.Server, 0, n)
	shutdownAll := func() {
		for _, s := range servers {
			s.Shutdown()
		}
	}
	for i := range n {
		name := fmt.Sprintf("node-%d", i+1)
		s, err := embednats.Start(embednats.Options{
			Dir:        filepath.Join(baseDir, name),
			Port:       embednats.RandomPort,
			ServerName: name,
			Logger:     logger,
			Cluster:    &embednats.Cluster{Name: ClusterName, Port: ports[i], Routes: routes},
		})
		if err != nil {
			shutdownAll()
			return nil, fmt.Errorf("start cluster %s: %w", name, err)
		}
		servers = append(servers, s)
	}
	if err := waitClusterReady(servers, clusterReadyTimeout); err != nil {
		shutdownAll()
		return nil, err
	}
	return servers, nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
// All listeners stay open until every port is chosen, so none repeats.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("natstest: find a free route port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitClusterReady polls until one node is the JetStream meta leader, it
// sees every node as a peer and every node's meta log is current.
func waitClusterReady(servers []*embednats.Server, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		if clusterReady(servers) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: no JetStream meta leader with %d peers after %s", embednats.ErrNotReady, len(servers), timeout)
		}
		<-tick.C
	}
}

func clusterReady(servers []*embednats.Server) bool {
	led := false
	for _, s := range servers {
		leader, current, peers := s.MetaState()
		if !current {
			return false
		}
		if leader {
			led = peers == len(servers)
		}
	}
	return led
}

// Cluster starts a JetStream cluster of n nodes for t, as StartCluster
// does, shut down when the test ends, and returns its nodes and their
// client URLs.
func Cluster(t testing.TB, n int) ([]*embednats.Server, []string) {
	t.Helper()
	servers, err := StartCluster(n, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range servers {
			s.Shutdown()
		}
	})
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.ClientURL()
	}
	return servers, urls
}
