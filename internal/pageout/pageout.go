// Package pageout gives the kernel back the pages of a process's own
// executable that it mapped while starting: the code and tables of
// start-up work (parsing the config, building the pipeline) and the pages
// the kernel mapped around them. It is what a kernel does with its own
// init sections after boot. The pages are clean copies of the file, so
// nothing is lost: code that runs again faults its pages back in, from
// the page cache or the disk. The kernel would drop them under memory
// pressure anyway; giving them back at once keeps the resident set the
// size of what the process runs.
package pageout

// Result is what Release did.
type Result struct {
	// Mappings is the number of the executable's mappings advised.
	Mappings int
	// FileBefore and FileAfter are the process's file-backed resident
	// bytes (RssFile) before and after.
	FileBefore, FileAfter int64
}
