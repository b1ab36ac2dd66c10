package ingest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/internal/attack"
	"github.com/outposthq/outpost/internal/testenv"
)

// The service logs in to a broker with a password file and an ACL
// (deploy/mosquitto): with Username and Password, with the credentials
// in the broker URL, over TLS. Neither its logs (at debug level) nor its
// errors ever hold a password or a URL's user info, whether the login
// succeeds or fails.
func TestBrokerLogin(t *testing.T) {
	b := attack.StartBroker(t, true)
	pw := b.Password(attack.Ingest)
	const wrong = "wr0ng-Pa55word"
	host := strings.TrimPrefix(b.URL(), "tcp://")
	userURL := func(pass string) string { return "tcp://" + attack.Ingest + ":" + pass + "@" + host }
	pem, err := os.ReadFile(b.CA())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("no CA")
	}
	for _, tc := range []struct {
		name    string
		opts    ingest.Options
		wantErr string // "" when it must start
	}{
		{name: "username and password", opts: ingest.Options{Broker: b.URL(), Username: attack.Ingest, Password: pw}},
		{name: "credentials in the URL", opts: ingest.Options{Broker: userURL(pw)}},
		{name: "over TLS", opts: ingest.Options{Broker: b.TLSURL(), Username: attack.Ingest, Password: pw,
			TLS: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}},
		{name: "wrong password", opts: ingest.Options{Broker: b.URL(), Username: attack.Ingest, Password: wrong},
			wantErr: "ingest: connect " + b.URL() + " as outpost-ingest: login refused by the broker"},
		{name: "wrong password in the URL", opts: ingest.Options{Broker: userURL(wrong)},
			wantErr: "ingest: connect " + b.URL() + " as outpost-ingest: login refused by the broker"},
		{name: "no identity", opts: ingest.Options{Broker: b.URL()},
			wantErr: "ingest: connect " + b.URL() + ": login refused by the broker"},
		{name: "no broker there", opts: ingest.Options{Broker: "tcp://" + attack.Ingest + ":" + wrong + "@127.0.0.1:1"},
			wantErr: "ingest: connect tcp://127.0.0.1:1 as outpost-ingest:"},
		{name: "credentials twice", opts: ingest.Options{Broker: userURL(wrong), Username: attack.Ingest, Password: wrong},
			wantErr: "ingest: credentials both in the broker URL and in Username"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, err := stores.Open(context.Background(), testenv.DB(t), zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			var logs testenv.Buffer
			o := tc.opts
			o.TopicPrefix = b.Prefix
			o.Group = "login"
			o.Logger = zerolog.New(&logs).Level(zerolog.DebugLevel)
			svc := ingest.New(store, &o)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = svc.Start(ctx)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Start: %v", err)
			case tc.wantErr == "":
				if err := svc.Close(ctx); err != nil {
					t.Error(err)
				}
				if !strings.Contains(logs.String(), `"broker":"`+strings.Replace(o.Broker, attack.Ingest+":"+pw+"@", "", 1)+`","username":"outpost-ingest"`) {
					t.Errorf("the start line does not name the broker and the user:\n%s", logs.String())
				}
			case err == nil:
				svc.Close(ctx)
				t.Fatalf("Start succeeded, want %q", tc.wantErr)
			case !strings.HasPrefix(err.Error(), tc.wantErr):
				t.Errorf("Start: %v, want %q", err, tc.wantErr)
			}
			for _, secret := range []string{pw, wrong} {
				if err != nil && strings.Contains(err.Error(), secret) {
					t.Errorf("a password in the error: %v", err)
				}
				if strings.Contains(logs.String(), secret) {
					t.Errorf("a password in the logs:\n%s", logs.String())
				}
			}
		})
	}
}
