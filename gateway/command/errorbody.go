package command

import (
	"fmt"

	"github.com/tinylib/msgp/msgp"
)

// DecodeErrorBody reads an error map (ErrorBody) of a reply that is not
// ok: its message and the messages it lists. It reads at most 8 keys
// and maxErrors messages, and skips keys it does not know.
func DecodeErrorBody(body []byte) (msg string, list []string, err error) {
	n, rest, err := msgp.ReadMapHeaderBytes(body)
	if err != nil {
		return "", nil, fmt.Errorf("not a map: %w", err)
	}
	if n > MaxRequestKeys {
		return "", nil, fmt.Errorf("%d keys", n)
	}
	for range n {
		var key []byte
		if key, rest, err = msgp.ReadMapKeyZC(rest); err != nil {
			return "", nil, err
		}
		switch string(key) {
		case "error":
			msg, rest, err = msgp.ReadStringBytes(rest)
		case "errors":
			var m uint32
			if m, rest, err = msgp.ReadArrayHeaderBytes(rest); err != nil {
				break
			}
			if m > maxErrors {
				return "", nil, fmt.Errorf("%d messages, more than %d", m, maxErrors)
			}
			list = make([]string, 0, m)
			for range m {
				var s string
				if s, rest, err = msgp.ReadStringBytes(rest); err != nil {
					break
				}
				list = append(list, s)
			}
		default:
			rest, err = msgp.Skip(rest)
		}
		if err != nil {
			return "", nil, fmt.Errorf("%q: %w", key, err)
		}
	}
	if len(rest) != 0 {
		return "", nil, fmt.Errorf("%d bytes after the map", len(rest))
	}
	return msg, list, nil
}
