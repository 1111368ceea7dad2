package translate

import (
	"fmt"
	"testing"
)

// benchCatalog is 100 services × 100 instances (10,000 endpoints).
func benchCatalog() Catalog {
	var c Catalog
	for s := range 100 {
		svc := Service{Name: fmt.Sprintf("svc-%02d", s)}
		for i := range 100 {
			svc.Instances = append(svc.Instances, Instance{
				ID: fmt.Sprintf("svc-%02d-%d", s, i), Address: fmt.Sprintf("10.%d.%d.%d", s, i/250, i%250), Port: 15006,
				Health: HealthPassing, Region: "eu", Zone: fmt.Sprintf("eu-%d", i%3),
			})
		}
		c.Services = append(c.Services, svc)
	}
	return c
}

// BenchmarkBuild is the once-per-change translation of the whole catalog.
func BenchmarkBuild(b *testing.B) {
	cat := benchCatalog()
	docs := parse(b, serviceDefaults, httpRoute, authzPolicy, rateLimit)
	b.ReportAllocs()
	for b.Loop() {
		Build(cat, docs, Options{})
	}
}

// BenchmarkSnapshotFor is the per-proxy part after a change: 1,000 sidecars
// of 100 services getting their checked snapshots (a fresh World each
// iteration, as after a catalog change).
func BenchmarkSnapshotFor(b *testing.B) {
	cat, docs := benchCatalog(), parse(b, serviceDefaults, httpRoute, authzPolicy, rateLimit)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		w := Build(cat, docs, Options{})
		b.StartTimer()
		for p := range 1000 {
			if _, err := w.SnapshotFor(Proxy{ID: fmt.Sprint(p), Service: fmt.Sprintf("svc-%02d", p%100)}); err != nil {
				b.Fatal(err)
			}
		}
	}
}
