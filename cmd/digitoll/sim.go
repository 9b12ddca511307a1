package main

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/digitoll/digitoll-worker/config"
	"github.com/digitoll/digitoll-worker/simulator"
)

// simScopes are granted to the simulator's client unless told otherwise.
const simScopes = "toll:movement/road/v2,toll:movement/air,toll:movement/entry,toll:goodsdeclaration/document.write"

func runSim(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "sim", "[flags]")
	listen := fs.String("listen", "127.0.0.1:8090", "address to serve on ($DIGITOLL_SIM_LISTEN)")
	publicURL := fs.String("public-url", "", "base URL clients reach the simulator at, e.g. http://simulator:8090 in docker-compose: the Maskinporten issuer, the aud grants must carry, and every advertised URL follow it; default http://<--listen>, 127.0.0.1 for an unspecified host ($DIGITOLL_SIM_PUBLIC_URL)")
	dir := fs.String("dir", ".digitoll/sim", "where the demo key is written, or read from on restart ($DIGITOLL_SIM_DIR)")
	clientID := fs.String("client-id", config.SimClientID, "integration id of the simulated client ($DIGITOLL_SIM_CLIENT_ID)")
	certFile := fs.String("client-cert", "", "PEM certificate of the client (x5c grants); default: a demo key pair made in --dir ($DIGITOLL_SIM_CLIENT_CERT)")
	pubFile := fs.String("client-public-key", "", "PEM public key of the client for kid grants ($DIGITOLL_SIM_CLIENT_PUBLIC_KEY)")
	keyID := fs.String("client-key-id", "", "kid of --client-public-key ($DIGITOLL_SIM_CLIENT_KEY_ID)")
	scopes := fs.String("scopes", simScopes, "comma-separated scopes granted to the client ($DIGITOLL_SIM_SCOPES)")
	delay := fs.Duration("validation-delay", 2*time.Second, "time Toll takes to validate a declaration ($DIGITOLL_SIM_VALIDATION_DELAY)")
	lifetime := fs.Duration("token-lifetime", 970*time.Second, "lifetime of Toll tokens ($DIGITOLL_SIM_TOKEN_LIFETIME)")
	if err := applyEnv(env, fs); err != nil {
		return err
	}
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}

	base, err := simPublicURL(*publicURL)
	if err != nil {
		return err
	}
	client, keyNote, err := simClient(*dir, *clientID, *certFile, *pubFile, *keyID, splitList(*scopes))
	if err != nil {
		return err
	}
	sim, err := simulator.Start(simulator.Config{
		ValidationDelay:   *delay,
		TollTokenLifetime: *lifetime,
		Clients:           []simulator.Client{client},
		Logger:            newLogger(env, config.Log{Format: "text"}),
		BaseURL:           base,
	}, *listen)
	if err != nil {
		return fmt.Errorf("start simulator on %s: %w", *listen, err)
	}
	defer sim.Close()

	fmt.Fprintf(env.stdout, "digitoll simulator listening on %s\n", sim.URL())
	fmt.Fprintf(env.stdout, "  Maskinporten issuer:     %s\n", sim.Issuer())
	fmt.Fprintf(env.stdout, "  Maskinporten token URL:  %s\n", sim.TokenURL())
	fmt.Fprintf(env.stdout, "  Toll base URL:           %s\n", sim.TollBaseURL())
	fmt.Fprintf(env.stdout, "  client id:               %s (scopes %s)\n", client.ID, strings.Join(client.Scopes, " "))
	fmt.Fprintf(env.stdout, "  %s\n", keyNote)
	fmt.Fprintf(env.stdout, "  admin API:               %s/_sim/ (faults, scopes, validation delay; see docs/simulator.md)\n", sim.URL())
	fmt.Fprintf(env.stdout, "Point the worker at it with DIGITOLL_ENV=sim DIGITOLL_SIM_URL=%s DIGITOLL_SIM_DIR=%s digitoll run\n", sim.URL(), *dir)
	<-ctx.Done()
	return nil
}

// simPublicURL checks --public-url: the simulator's issuer is built from
// it, so it must be an absolute http(s) URL without path, query or
// fragment. A trailing slash is dropped.
func simPublicURL(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := neturl.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%w: DIGITOLL_SIM_PUBLIC_URL (--public-url): %q is not a base URL like http://simulator:8090", config.ErrInvalid, raw)
	}
	return strings.TrimSuffix(raw, "/"), nil
}

// simClient builds the simulator's one client from a given certificate or
// public key, or from a demo key pair it keeps in dir.
func simClient(dir, clientID, certFile, pubFile, keyID string, scopes []string) (simulator.Client, string, error) {
	switch {
	case certFile != "" && pubFile != "":
		return simulator.Client{}, "", fmt.Errorf("--client-cert and --client-public-key exclude each other")
	case certFile != "":
		cert, err := readCertificate(certFile)
		if err != nil {
			return simulator.Client{}, "", err
		}
		return simulator.Client{ID: clientID, Certificate: cert, Scopes: scopes}, "trusts the certificate in " + certFile, nil
	case pubFile != "":
		if keyID == "" {
			return simulator.Client{}, "", fmt.Errorf("--client-public-key needs --client-key-id")
		}
		pub, err := readPublicKey(pubFile)
		if err != nil {
			return simulator.Client{}, "", err
		}
		return simulator.Client{ID: clientID, KeyID: keyID, PublicKey: pub, Scopes: scopes}, "trusts the key in " + pubFile + " as kid " + keyID, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return simulator.Client{}, "", fmt.Errorf("create %s: %w", dir, err)
	}
	key, err := simulator.WriteDemoKey(dir, clientID)
	if err != nil {
		return simulator.Client{}, "", err
	}
	c := key.Client(scopes...)
	c.ID = clientID
	return c, fmt.Sprintf("demo key:                %s (certificate %s, kid %s)", key.KeyFile, key.CertFile, key.KeyID), nil
}

func readCertificate(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM CERTIFICATE", path)
	}
	return x509.ParseCertificate(block.Bytes)
}

func readPublicKey(path string) (*rsa.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s holds no PEM block", path)
	}
	var pub any
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			pub = cert.PublicKey
		}
	default:
		return nil, fmt.Errorf("%s: PEM block %q is not a public key", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New(path + ": not an RSA public key")
	}
	return rsaPub, nil
}

// applyEnv sets each flag whose usage names a $VARIABLE from that
// variable, so that flags and the environment (the docker-compose way)
// configure a command alike, and a flag on the command line still wins. A
// bad value stops the command with a message naming the variable.
func applyEnv(env *environment, fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		i := strings.Index(f.Usage, "($")
		if i < 0 || err != nil {
			return
		}
		name := strings.TrimSuffix(f.Usage[i+2:], ")")
		if v := env.getenv(name); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%w: %s: %q: %v", config.ErrInvalid, name, v, e)
			}
		}
	})
	return err
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
