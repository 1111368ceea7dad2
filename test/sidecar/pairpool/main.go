// Command pairpool pools the rounds of several runs of the sidecar pair
// benchmark (TestBenchmarkSidecarPair's reports, or the go test -v output
// holding them) and gives the paired p99 comparison over all of them: a
// difference of a few hundredths of a millisecond needs more rounds than
// one run has. Pool only runs of the same build and settings:
//
//	go run ./sidecar/pairpool run1.log run2.log run3.log
package main

import (
	"flag"
	"fmt"
	"log"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/switchyard-mesh/switchyard/test/sidecar/paired"
)

const sidecarPair = "sidecar pair (mTLS)"

func main() {
	level := flag.Float64("level", 0.95, "least coverage of the interval")
	flag.Parse()
	if flag.NArg() == 0 {
		log.Fatal("pairpool: name the reports to pool")
	}
	diffs := map[string][]time.Duration{}
	for _, name := range flag.Args() {
		f, err := os.Open(name)
		if err != nil {
			log.Fatalf("pairpool: %v", err)
		}
		p99s, err := paired.ReadP99s(f)
		f.Close()
		if err != nil {
			log.Fatalf("pairpool: %s: %v", name, err)
		}
		sidecar := p99s[sidecarPair]
		if len(sidecar) == 0 {
			log.Fatalf("pairpool: %s has no rounds of the %s", name, sidecarPair)
		}
		for ref, p99 := range p99s {
			if ref == sidecarPair || ref == "direct" {
				continue
			}
			if len(p99) != len(sidecar) {
				log.Fatalf("pairpool: %s: %d rounds of %s, %d of the %s", name, len(p99), ref, len(sidecar), sidecarPair)
			}
			for i := range p99 {
				diffs[ref] = append(diffs[ref], sidecar[i]-p99[i])
			}
		}
	}
	for _, ref := range slices.Sorted(maps.Keys(diffs)) {
		fmt.Printf("paired p99, sidecar pair minus %s, %d runs pooled: %s\n", ref, flag.NArg(), paired.Summarize(diffs[ref], *level))
	}
}
