// Package fuzzbytes hands out a fuzz input one byte at a time, so that a
// fuzz test can decode any input into a sequence of choices (a config, the
// next operation, its argument) and the fuzzer's mutations steer them.
package fuzzbytes

// Reader is what is left of a fuzz input.
type Reader []byte

// Next is the next byte, or 0 once the input is used up: every input,
// however short, decodes to something.
func (r *Reader) Next() byte {
	if len(*r) == 0 {
		return 0
	}
	c := (*r)[0]
	*r = (*r)[1:]
	return c
}
