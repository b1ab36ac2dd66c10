package yamlpos

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// ReadFile reads the file name for Parse, refusing one that is not a
// regular file (a named pipe would block the reader until a writer comes,
// a device such as /dev/zero never ends) or that holds more than max
// bytes, before reading it into memory. A file that grows while it is read
// is refused as well: at most max+1 bytes are read.
//
// The refusals are an ErrorList of one Error at line 1, column 1 of the
// file ("rules.yaml:1:1: larger than 1 MiB"), as Parse reports its own;
// other errors (a file that does not exist, a permission) are those of
// the os package.
func ReadFile(name string, max int64) ([]byte, error) {
	// Stat first: opening a named pipe waits for a writer, and opening a
	// device may do more than that. A file that cannot be stat'ed gets
	// the error of opening it.
	if fi, err := os.Stat(name); err == nil {
		if e := checkFile(name, fi, max); e != nil {
			return nil, e
		}
	}
	// Non-blocking, should a pipe have taken the file's place since.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close() // read only: nothing to flush
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if e := checkFile(name, fi, max); e != nil {
		return nil, e
	}
	data := make([]byte, 0, fi.Size()+1)
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if int64(len(data)) > max {
			return nil, tooLarge(name, max)
		}
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return nil, err
		}
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)] // grown while read
		}
	}
}

// checkFile refuses what ReadFile must not read.
func checkFile(name string, fi fs.FileInfo, max int64) error {
	switch m := fi.Mode(); {
	case m.IsDir():
		return ErrorList{{File: name, Line: 1, Col: 1, Msg: "not a regular file (a directory)"}}
	case m&fs.ModeNamedPipe != 0:
		return ErrorList{{File: name, Line: 1, Col: 1, Msg: "not a regular file (a named pipe)"}}
	case m&fs.ModeDevice != 0:
		return ErrorList{{File: name, Line: 1, Col: 1, Msg: "not a regular file (a device)"}}
	case !m.IsRegular():
		return ErrorList{{File: name, Line: 1, Col: 1, Msg: "not a regular file"}}
	case fi.Size() > max:
		return tooLarge(name, max)
	}
	return nil
}

func tooLarge(name string, max int64) error {
	return ErrorList{{File: name, Line: 1, Col: 1, Msg: "larger than " + sizeString(max)}}
}

// sizeString writes n bytes the way people read it: 1 MiB, 64 KiB, 100 bytes.
func sizeString(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
