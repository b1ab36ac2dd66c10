// Package browser gives tests a headless Chromium, driven with chromedp,
// to look at the web console as a person does. Tests run it when a
// Chromium is installed; with OUTPOST_TEST_BROWSER=required (CI sets it)
// a missing Chromium fails the test instead of skipping it.
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// EnvRequired, set to "required", makes a missing Chromium a failure.
const EnvRequired = "OUTPOST_TEST_BROWSER"

// names are the executables looked for, in order.
var names = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Find returns the path of an installed Chromium, or "".
func Find() string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// New starts a headless Chromium for the test, sized like a laptop's
// window, and returns a chromedp context on a tab of it; the browser
// ends with the test. Without a Chromium the test is skipped, or fails
// under EnvRequired.
func New(t testing.TB) context.Context {
	t.Helper()
	path := Find()
	if path == "" {
		if os.Getenv(EnvRequired) == "required" {
			t.Fatalf("no Chromium (looked for %v) and %s=required", names, EnvRequired)
		}
		t.Skipf("no Chromium installed (looked for %v); set %s=required to fail instead", names, EnvRequired)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests may run as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	var (
		mu       sync.Mutex
		problems []string
		done     = make(chan struct{})
	)
	t.Cleanup(func() {
		cancel()
		<-done
		cancelAlloc()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("browser console: %s", p)
		}
	})
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil { // starts the browser
		close(done)
		t.Fatalf("start %s: %v", path, err)
	}
	// What a person would see in the developer tools as a fault of the
	// page fails the test: an uncaught exception, a console.error, a
	// refusal by the Content-Security-Policy. Failed requests (a 401
	// before the token is given) are the network's, not the page's.
	msgs := chromedp.Console(ctx)
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError && m.Source != "network" {
				mu.Lock()
				if len(problems) < 20 {
					problems = append(problems, fmt.Sprintf("%s (%s:%d)", m.String(), m.URL, m.Line+1))
				}
				mu.Unlock()
			}
		}
	}()
	return ctx
}

// Screenshot saves a PNG of the whole page as name in the test's
// artifact directory (go test -artifacts keeps it) and returns its path.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
