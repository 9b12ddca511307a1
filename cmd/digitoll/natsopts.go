package main

import (
	"flag"
	"fmt"
	"log/slog"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/natsconn"
)

// natsFlags are the connection flags of the commands that talk to the
// worker's NATS server (publish, results, dlq): the worker's NATS client
// settings, each also read from its variable by applyEnv.
type natsFlags struct {
	env   *environment
	flags map[string]*string
}

func addNATSFlags(env *environment, fs *flag.FlagSet) natsFlags {
	nf := natsFlags{env: env, flags: map[string]*string{}}
	for _, s := range config.NATSClientSettings() {
		usage := s.Usage
		if s.Env == "DIGITOLL_NATS_URL" {
			usage = "NATS server URL(s) of the worker; unset: $NATS_URL, else the selected nats context, else " + config.DefaultNATSURL
		}
		nf.flags[s.Env] = fs.String(s.Flag, s.Default, usage+" ($"+s.Env+")")
	}
	return nf
}

// config checks the flags as `digitoll run` would check the same
// variables, and says on stderr where the server's URL came from when no
// setting of digitoll gave it.
func (nf natsFlags) config() (config.NATS, error) {
	c, err := config.ParseNATS(func(env string) string {
		if v, ok := nf.flags[env]; ok {
			return *v
		}
		return ""
	}, nf.env.getenv)
	if err != nil {
		return config.NATS{}, err
	}
	if c.Source != "" && c.Source != "DIGITOLL_NATS_URL" {
		fmt.Fprintf(nf.env.stderr, "NATS at %s, from %s\n", natsconn.RedactURL(c.URL), c.Source)
	}
	return c, nil
}

// connect connects to the worker's server.
func (nf natsFlags) connect(name string) (*natsconn.Conn, error) {
	c, err := nf.config()
	if err != nil {
		return nil, err
	}
	return natsconn.Connect(c, name, slog.New(slog.DiscardHandler))
}
