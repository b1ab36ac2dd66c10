package chaos

import (
	"fmt"

	firmwaresim "github.com/outposthq/outpost/firmware-sim"
)

// oracle maps a value back to the index of the reading that carried it:
// the n-th reading a series of a run emits is the n-th value of a signal
// generator with the run's spec, because the constant-plus-noise signal
// draws one random number per sample whatever the timestamp.
type oracle struct {
	spec firmwaresim.SignalSpec
	sig  *firmwaresim.Signal
	idx  map[float64]int32 // value → index; ambiguous values map to -1
	amb  map[float64][]int32
	n    int // values generated
}

func newOracle(spec firmwaresim.SignalSpec) (*oracle, error) {
	sig, err := firmwaresim.NewSignal(spec)
	if err != nil {
		return nil, fmt.Errorf("chaos: oracle: %w", err)
	}
	return &oracle{spec: spec, sig: sig, idx: make(map[float64]int32), amb: make(map[float64][]int32)}, nil
}

// grow generates values up to index n−1.
func (o *oracle) grow(n int) {
	for ; o.n < n; o.n++ {
		v := o.sig.At(0) // the constant signal ignores time
		i := int32(o.n)
		switch prev, ok := o.idx[v]; {
		case !ok:
			o.idx[v] = i
		case prev >= 0:
			o.amb[v] = []int32{prev, i}
			o.idx[v] = -1
		default:
			o.amb[v] = append(o.amb[v], i)
		}
	}
}

// lookup returns the indices (below limit) whose value is v: one normally,
// several when the generator repeated itself, none when v is foreign.
func (o *oracle) lookup(v float64, limit int) []int32 {
	for {
		i, ok := o.idx[v]
		if ok || o.n >= limit {
			switch {
			case !ok:
				return nil
			case i >= 0:
				return []int32{i}
			default:
				return o.amb[v]
			}
		}
		o.grow(min(limit, max(2*o.n, 4096)))
	}
}
