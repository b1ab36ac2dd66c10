package gateway

import (
	"context"
	"errors"
	stdlog "log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// metricsServer is the optional HTTP listener of metrics.listen. New
// binds it, so a taken port is a StartError before anything runs; Start
// serves on it; closeParts stops it.
type metricsServer struct {
	ln  net.Listener
	srv *http.Server
	wg  sync.WaitGroup // the serving goroutine
}

// Bounds of one metrics request: a scrape reads counters and writes a
// few tens of kilobytes, so these are generous.
const (
	metricsReadTimeout  = 10 * time.Second
	metricsWriteTimeout = 30 * time.Second
	metricsMaxHeader    = 8 << 10
	metricsCloseWait    = 2 * time.Second
)

func listenMetrics(addr string, h http.Handler, log zerolog.Logger) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &metricsServer{ln: ln, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: metricsReadTimeout,
		ReadTimeout:       metricsReadTimeout,
		WriteTimeout:      metricsWriteTimeout,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    metricsMaxHeader,
		ErrorLog:          stdlog.New(log, "", 0),
	}}, nil
}

// start serves in a goroutine the server owns until close.
func (m *metricsServer) start(log zerolog.Logger) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.srv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("metrics listener failed; /metrics and /healthz are gone until restart")
		}
	}()
}

// close stops serving, letting scrapes in progress finish for a moment,
// and closes the listener (also when start never ran).
func (m *metricsServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), metricsCloseWait)
	defer cancel()
	err := m.srv.Shutdown(ctx) // a Serve not yet begun returns at once
	if errors.Is(err, context.DeadlineExceeded) {
		err = m.srv.Close()
	}
	// Shutdown closes only a listener Serve took.
	if cerr := m.ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
		err = errors.Join(err, cerr)
	}
	m.wg.Wait()
	return err
}

// Addr is the metrics listener's address, nil when metrics.listen is
// off (with port 0 in the config, the port the system chose).
func (g *Gateway) MetricsAddr() net.Addr {
	if g.msrv == nil {
		return nil
	}
	return g.msrv.ln.Addr()
}

// startMetrics serves metrics.listen, warning when it is reachable from
// other machines: the endpoint has no authentication.
func (g *Gateway) startMetrics() {
	if g.msrv == nil {
		return
	}
	log := g.log.With().Str("component", "metrics").Logger()
	g.msrv.start(log)
	ev := log.Info()
	if !g.cfg.Metrics.Loopback() {
		ev = log.Warn()
	}
	ev.Str("addr", g.MetricsAddr().String()).Bool("loopback", g.cfg.Metrics.Loopback()).
		Msg("serving /metrics and /healthz (no authentication: keep the address on loopback or behind a firewall)")
}
