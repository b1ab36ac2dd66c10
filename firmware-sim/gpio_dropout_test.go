package firmwaresim

import (
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// TestGPIODropout: a pin in dropout reads its pull resistor, like an input
// whose wire is cut, and its signal again when the window ends.
func TestGPIODropout(t *testing.T) {
	cases := []struct {
		pull gpio.Pull
		want gpio.Level
	}{
		{gpio.PullUp, gpio.High},
		{gpio.PullDown, gpio.Low},
		{gpio.Float, gpio.Low},
	}
	for _, tc := range cases {
		t.Run(tc.pull.String(), func(t *testing.T) {
			clk := newFakeClock()
			// The signal is the opposite of what the pull gives.
			level := constant(1)
			if tc.want == gpio.High {
				level = constant(0)
			}
			p, err := NewGPIOPin("door", 17, &GPIOOptions{ChipOptions: clk.opts(Fault{Kind: FaultDropout, From: time.Second, For: time.Second}), Level: level})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.In(tc.pull, gpio.BothEdges); err != nil {
				t.Fatal(err)
			}
			before := p.Read()
			clk.Sleep(time.Second)
			if got := p.Read(); got != tc.want {
				t.Fatalf("in dropout with %s: %v, want %v", tc.pull, got, tc.want)
			}
			clk.Sleep(time.Second)
			if got := p.Read(); got != before {
				t.Fatalf("after dropout: %v, want %v again", got, before)
			}
		})
	}
}
