package contract

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/switchyard-mesh/switchyard/test/harness"
	"github.com/switchyard-mesh/switchyard/test/shop"
)

// An exerciser starts a binary (and whatever it needs) as real processes,
// drives enough traffic that the metrics its dashboards and rules use have
// samples, and returns the /metrics URLs to scrape. The processes stop when
// t ends.
//
// A binary that cannot start with embedded defaults and -admin.addr alone, or
// whose metrics only appear after traffic, registers its own exerciser in a
// file exercise_<binary>_test.go of this package:
//
//	func init() { exercisers["ca"] = exerciseCA }
type exerciser func(t testing.TB) (metricsURLs []string)

var exercisers = map[string]exerciser{
	"shop": exerciseShop,
}

// exerciseShop runs the four apps, serves a composed page, a not-found and
// an injected failure, so every shop metric has samples.
func exerciseShop(t testing.TB) []string {
	s := shop.Start(t, shop.Options{})
	for _, path := range []string{"/api/users/42", "/api/users/9999"} {
		mustGet(t, s["frontend"].URL+path)
	}
	resp, err := http.Post(s["users"].AdminURL+"/admin/fault?error_rate=1", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mustGet(t, s["frontend"].URL+"/api/users/1")
	var urls []string
	for _, name := range shop.Apps {
		urls = append(urls, s[name].AdminURL+"/metrics")
	}
	return urls
}

// exerciseWithDefaults starts bin with its embedded defaults, only moving
// its admin port to a free one, and scrapes it once /metrics answers.
func exerciseWithDefaults(t testing.TB, bin string) []string {
	admin := harness.FreeAddr(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s could not be started with embedded defaults and -admin.addr alone. "+
				"Register an exerciser for it in test/contract/exercise_%s_test.go "+
				"(func init() { exercisers[%q] = … }) that starts what it needs and drives traffic, "+
				"so the metrics its dashboards use have samples.", bin, bin, bin)
		}
	})
	harness.Start(t, harness.Process{
		Name:     bin,
		Binary:   harness.Binary(t, bin),
		Args:     []string{"-admin.addr", admin},
		ReadyURL: "http://" + admin + "/metrics",
	})
	return []string{"http://" + admin + "/metrics"}
}

func mustGet(t testing.TB, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// scrape returns the metric names a /metrics endpoint exports.
func scrape(url string) (map[string]bool, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return exposedNames(string(body)), nil
}
