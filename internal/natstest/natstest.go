// Package natstest runs a NATS server in the test's process: JetStream
// on, its store in the test's temp dir, and an MQTT listener, each on a
// free loopback port, so that gateways (MQTT) and ingest (NATS) meet on
// it as they do on a NATS cluster.
package natstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is a running NATS server.
type Server struct {
	srv  *server.Server
	opts *server.Options
}

// Start starts a server and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	o := &server.Options{
		ServerName: "outpost-test-" + hex.EncodeToString(b[:]),
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		NoLog:      true,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		MQTT:       server.MQTTOpts{Host: "127.0.0.1", Port: server.RANDOM_PORT},
	}
	srv, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		t.Fatal("natstest: the server is not ready after 10 s")
	}
	s := &Server{srv: srv, opts: o}
	t.Cleanup(s.Stop)
	return s
}

// URL is the server's NATS URL.
func (s *Server) URL() string { return s.srv.ClientURL() }

// MQTTURL is its MQTT listener's URL, for a gateway's uplink.broker.
func (s *Server) MQTTURL() string { return fmt.Sprintf("tcp://127.0.0.1:%d", s.opts.MQTT.Port) }

// Stop shuts the server down and waits for it. Idempotent.
func (s *Server) Stop() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}
