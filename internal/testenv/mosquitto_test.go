package testenv

import (
	"net"
	"testing"
)

func TestMosquittoStopStart(t *testing.T) {
	m := StartMosquitto(t, &MosquittoOptions{Global: "max_queued_messages 5"})
	if c, err := net.Dial("tcp", m.Addr()); err != nil {
		t.Fatal(err)
	} else {
		c.Close()
	}
	m.Stop()
	if c, err := net.Dial("tcp", m.Addr()); err == nil {
		c.Close()
		t.Fatal("broker still listens after Stop")
	}
	m.Start()
	c, err := net.Dial("tcp", m.Addr())
	if err != nil {
		t.Fatalf("after Start: %v", err)
	}
	c.Close()
}
