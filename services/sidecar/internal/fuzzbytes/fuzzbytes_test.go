package fuzzbytes

import "testing"

func TestNextHandsOutTheInputThenZeros(t *testing.T) {
	r := Reader{7, 0, 255}
	var got []byte
	for range 5 {
		got = append(got, r.Next())
	}
	if want := []byte{7, 0, 255, 0, 0}; string(got) != string(want) {
		t.Fatalf("Next gave %v, want %v", got, want)
	}
}
