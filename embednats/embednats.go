// Package embednats runs an embedded nats-server with JetStream: the broker for
// a single-machine installation, and the real server the tests of every other
// package run against. It listens on an ordinary TCP address so that the
// `nats` CLI and other processes can connect to it as to any nats-server.
package embednats

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Port values with a meaning of their own in Options.Port.
const (
	// DefaultPort (0) makes the server listen on NATS's usual 4222.
	DefaultPort = 0
	// RandomPort (-1) makes the server pick a free port; ClientURL tells
	// which. Tests use it.
	RandomPort = -1
)

// readyTimeout bounds how long Start waits for the server to accept
// connections. JetStream recovers its streams before it is ready, so a large
// store may take a few seconds, and a cluster node waits for its peers,
// longer on a loaded machine: 30 s bounds both without hiding a server that
// will never come up.
const readyTimeout = 30 * time.Second

// ErrNotReady is returned when a server did not become ready in time.
var ErrNotReady = errors.New("nats-server not ready")

// ErrPortInUse is returned when the client port the server is to listen on
// is taken by another process. nats-server itself would only log that and
// never become ready, so Start would wait out readyTimeout for nothing.
var ErrPortInUse = errors.New("the client port is in use")

// Options configures an embedded server.
type Options struct {
	// Dir is the JetStream store directory. Required: an embedded broker
	// whose messages vanish with the process would break every promise the
	// worker makes.
	Dir string
	// Host is the address to listen on; default "127.0.0.1", so that an
	// embedded broker is not reachable from the network unless asked.
	Host string
	// Port is the client port: 0 (DefaultPort) means 4222, -1 (RandomPort)
	// means any free port, anything else that port.
	Port int
	// ServerName names the server in logs and in a cluster; default is the
	// server's generated id.
	ServerName string
	// SyncAlways makes JetStream fsync every write before acknowledging it,
	// instead of every two minutes (the server's default). It closes the
	// window in which a machine crash (not a process crash) loses
	// acknowledged messages, at the cost of much slower writes.
	SyncAlways bool
	// Logger receives the server's log lines; nil discards them.
	Logger *slog.Logger
	// MaxPayload is the largest message the server accepts, in bytes;
	// 0 keeps the server's default of 1 MB. Larger files belong in the
	// Object Store.
	MaxPayload int32
	// TLS, when set, makes the server accept only TLS connections with
	// this configuration (its Certificates are the server's). With
	// ClientAuth tls.RequireAndVerifyClientCert it also requires a client
	// certificate issued by one of ClientCAs. In-process connections
	// (InProcessConn) need no TLS.
	TLS *tls.Config
	// Users and NKeys, when either is set, make the server require
	// authentication: a user name with its password, or a signature by
	// the private half of one of NKeys (public user NKeys, "U…"). All of
	// them share the server's one account, and so its JetStream.
	Users []User
	NKeys []string

	// Cluster, when set, makes the server a node of a route cluster (the
	// test kit internal/natstest starts three on loopback).
	Cluster *Cluster
}

// Cluster is a server's place in a route cluster: every node has the same
// Name and the route URLs of all.
type Cluster struct {
	// Name is the cluster's name.
	Name string
	// Port is this node's route port, on Options.Host.
	Port int
	// Routes are the nats-route:// URLs of every node, this one included.
	Routes []*url.URL
}

// Server is a running embedded nats-server.
type Server struct {
	ns *server.Server
	// unlock releases the store directory's lock, once.
	unlock func()
}

// Start starts a server with JetStream and waits until it accepts
// connections. It holds an exclusive lock on Options.Dir until Shutdown:
// while another server (in this process or another) holds the store, Start
// fails at once with a *StoreInUseError and leaves the store unopened.
func Start(opts Options) (*Server, error) {
	sopts, err := serverOptions(opts)
	if err != nil {
		return nil, err
	}
	release, err := lockStore(opts.Dir)
	if err != nil {
		return nil, err
	}
	if err := portFree(sopts); err != nil {
		release()
		return nil, err
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		release()
		return nil, fmt.Errorf("configure nats-server: %w", err)
	}
	if opts.Logger != nil {
		l := opts.Logger
		if opts.ServerName != "" {
			l = l.With("nats_server", opts.ServerName)
		}
		// Trace logs every protocol line; it stays off whatever the level.
		ns.SetLoggerV2(slogAdapter{l: l}, debugEnabled(l), false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(readyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		release()
		return nil, fmt.Errorf("%w after %s (store %s)", ErrNotReady, readyTimeout, opts.Dir)
	}
	return &Server{ns: ns, unlock: sync.OnceFunc(release)}, nil
}

// portFree tells whether the client port of o can be listened on. A port
// taken between this check and the server's own listen still ends in
// ErrNotReady; this only spares the common case (another server already
// there) its wait.
func portFree(o *server.Options) error {
	if o.Port == RandomPort {
		return nil
	}
	port := o.Port
	if port == DefaultPort {
		port = server.DEFAULT_PORT
	}
	addr := net.JoinHostPort(o.Host, strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrPortInUse, addr, err)
	}
	return ln.Close()
}

func serverOptions(opts Options) (*server.Options, error) {
	if opts.Dir == "" {
		return nil, errors.New("embednats: Options.Dir (the JetStream store directory) is required")
	}
	if opts.Port < RandomPort {
		return nil, fmt.Errorf("embednats: port %d is not a port, 0 (4222) or -1 (random)", opts.Port)
	}
	if opts.MaxPayload < 0 {
		return nil, fmt.Errorf("embednats: MaxPayload %d is negative", opts.MaxPayload)
	}
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	sopts := &server.Options{
		ServerName: opts.ServerName,
		Host:       host,
		Port:       opts.Port,
		JetStream:  true,
		StoreDir:   opts.Dir,
		SyncAlways: opts.SyncAlways,
		MaxPayload: opts.MaxPayload,
		// The embedding program owns signals and, unless it passes a
		// Logger, the server says nothing.
		NoSigs: true,
		NoLog:  opts.Logger == nil,
	}
	if err := applySecurity(sopts, opts); err != nil {
		return nil, err
	}
	if c := opts.Cluster; c != nil {
		sopts.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: c.Port}
		sopts.Routes = c.Routes
	}
	return sopts, nil
}

// ClientURL is the nats:// URL clients (and the nats CLI) connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Name is the server's name: Options.ServerName, or its generated id.
func (s *Server) Name() string { return s.ns.Name() }

// Connect opens a client connection to the server over loopback TCP.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to embedded nats-server %s: %w", s.ClientURL(), err)
	}
	return nc, nil
}

// Shutdown stops the server and returns once it has stopped: clients are
// disconnected and JetStream has flushed its store. Calling it again is a
// no-op.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	s.unlock()
}

// MetaState is this server's view of JetStream's meta group in a
// cluster: whether it leads the group, whether its copy of the meta log is
// current, and how many peers the group has as it knows.
func (s *Server) MetaState() (leader, current bool, peers int) {
	return s.ns.JetStreamIsLeader(), s.ns.JetStreamIsCurrent(), len(s.ns.JetStreamClusterPeers())
}

// Traffic is how many messages the server has received from its
// connections (in) and sent to them (out) since it started: core
// publishes, JetStream API requests, acks and replies alike, as its
// monitoring page (/varz in_msgs, out_msgs) counts them. The difference
// of two readings is the traffic between them; the benchmarks use it to
// count the messages a declaration costs, which unlike CPU time does not
// depend on what else the machine runs.
func (s *Server) Traffic() (in, out int64, err error) {
	v, err := s.ns.Varz(nil)
	if err != nil {
		return 0, 0, fmt.Errorf("embedded nats-server %s: %w", s.Name(), err)
	}
	return v.InMsgs, v.OutMsgs, nil
}

// Running reports whether the server is still running.
func (s *Server) Running() bool { return s.ns.Running() }
