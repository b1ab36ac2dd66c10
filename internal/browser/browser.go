// Package browser gives tests a headless Chromium, driven with chromedp,
// to look at the web console as a person does. Tests run it when a
// Chromium is installed; with OUTPOST_TEST_BROWSER=required (CI sets it)
// a missing Chromium fails the test instead of skipping it.
package browser

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
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
func New(t *testing.T) context.Context {
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
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil { // starts the browser
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// Screenshot saves a PNG of the whole page as name in the test's
// artifact directory (go test -artifacts keeps it) and returns its path.
func Screenshot(t *testing.T, ctx context.Context, name string) string {
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
