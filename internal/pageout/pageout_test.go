//go:build linux

package pageout

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func TestExeMappings(t *testing.T) {
	maps := []byte(`00400000-00a51000 r-xp 00000000 fd:01 1234 /usr/bin/outpost
00a51000-010e0000 r--p 00651000 fd:01 1234 /usr/bin/outpost
010e0000-01148000 rw-p 00ce0000 fd:01 1234 /usr/bin/outpost
01148000-03192000 rw-p 00000000 00:00 0
7f0000000000-7f0000001000 r--p 00000000 fd:02 1234 /other/device/same/inode
7f0000002000-7f0000003000 r--p 00000000 fd:01 99 /lib/other
garbage line
7f0000004000-zz r--p 00000000 fd:01 1234 /usr/bin/outpost
`)
	got := exeMappings(maps, 0xfd, 0x01, 1234)
	want := []mapping{{0x400000, 0xa51000}, {0xa51000, 0x10e0000}, {0x10e0000, 0x1148000}}
	if len(got) != len(want) {
		t.Fatalf("got %d mappings %x, want %x", len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d: got %x, want %x", i, got[i], want[i])
		}
	}
}

// The test binary gives back its own pages: its file-backed resident
// set shrinks, and it runs on.
func TestRelease(t *testing.T) {
	r, err := Release()
	if errors.Is(err, unix.EINVAL) {
		t.Logf("this kernel has no MADV_PAGEOUT: %v", err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.Mappings == 0 {
		t.Fatal("no mapping of the executable found")
	}
	if r.FileBefore <= 0 || r.FileAfter < 0 || r.FileAfter >= r.FileBefore {
		t.Fatalf("RssFile %d bytes before, %d after: want less after", r.FileBefore, r.FileAfter)
	}
	t.Logf("%d mappings; RssFile %d KiB → %d KiB", r.Mappings, r.FileBefore>>10, r.FileAfter>>10)
}
