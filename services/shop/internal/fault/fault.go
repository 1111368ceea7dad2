// Package fault injects latency and errors into a shop app's responses, for
// resilience tests of the mesh: the settings come from config at start and
// can be changed at run time through an admin endpoint.
package fault

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-mesh/switchyard/services/kit/config"
)

// MaxLatency bounds injected latency, so a typo cannot hang an app for hours.
const MaxLatency = time.Minute

// Settings is what to inject into every request.
type Settings struct {
	Latency   time.Duration `yaml:"latency" json:"latency" help:"delay added before every API response"`
	ErrorRate float64       `yaml:"error_rate" json:"error_rate" help:"fraction of API requests answered 503, 0 to 1"`
}

// Validate reports settings out of range, naming latency or error_rate.
func (s Settings) Validate() error {
	if s.Latency < 0 || s.Latency > MaxLatency {
		return config.Errorf("latency", "want 0 to %s, got %s", MaxLatency, s.Latency)
	}
	if !(s.ErrorRate >= 0 && s.ErrorRate <= 1) { // also rejects NaN
		return config.Errorf("error_rate", "want 0 to 1, got %v", s.ErrorRate)
	}
	return nil
}

// MarshalJSON writes latency as a Go duration string ("50ms").
func (s Settings) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Latency   string  `json:"latency"`
		ErrorRate float64 `json:"error_rate"`
	}{s.Latency.String(), s.ErrorRate})
}

// Update applies the query parameters latency and error_rate of an admin
// request to cur; parameters left out keep their current value. Unknown
// parameters are an error, as is a result that fails Validate.
func Update(cur Settings, q url.Values) (Settings, error) {
	next := cur
	for key, vals := range q {
		if len(vals) != 1 {
			return cur, config.Errorf(key, "give it once, got %d values", len(vals))
		}
		switch key {
		case "latency":
			d, err := time.ParseDuration(vals[0])
			if err != nil {
				return cur, config.Errorf(key, "want a duration such as 50ms, got %q", vals[0])
			}
			next.Latency = d
		case "error_rate":
			f, err := strconv.ParseFloat(vals[0], 64)
			if err != nil {
				return cur, config.Errorf(key, "want a number from 0 to 1, got %q", vals[0])
			}
			next.ErrorRate = f
		default:
			return cur, config.Errorf(key, "unknown parameter (known: latency, error_rate)")
		}
	}
	if err := next.Validate(); err != nil {
		return cur, err
	}
	return next, nil
}

// Injector applies the current Settings to requests passing through its
// middleware.
type Injector struct {
	instance string
	rand     func() float64
	sleep    func(ctx context.Context, d time.Duration) error
	injected *prometheus.CounterVec

	mu       sync.RWMutex
	settings Settings
}

// Option changes how an Injector draws randomness or waits, for tests.
type Option func(*Injector)

// WithRand makes the injector draw from rnd (values in [0,1)) instead of the
// global random source.
func WithRand(rnd func() float64) Option { return func(i *Injector) { i.rand = rnd } }

// WithSleep makes the injector wait with sleep instead of a timer.
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(i *Injector) { i.sleep = sleep }
}

// New returns an injector for the app instance named instance (reported in
// injected error bodies), counting injections in
// switchyard_shop_faults_injected_total{kind} on reg.
func New(instance string, s Settings, reg prometheus.Registerer, opts ...Option) *Injector {
	i := &Injector{
		instance: instance,
		rand:     rand.Float64,
		sleep:    sleepCtx,
		settings: s,
		injected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_shop_faults_injected_total",
			Help: "Faults injected into API responses, by kind (latency or error).",
		}, []string{"kind"}),
	}
	for _, o := range opts {
		o(i)
	}
	reg.MustRegister(i.injected)
	i.injected.WithLabelValues("latency")
	i.injected.WithLabelValues("error")
	return i
}

// Settings returns what is injected now.
func (i *Injector) Settings() Settings {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.settings
}

// Set replaces what is injected.
func (i *Injector) Set(s Settings) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.settings = s
}

// Middleware delays and fails requests as the current settings say. An
// injected failure is a 503 with a JSON body naming the instance.
func (i *Injector) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := i.Settings()
		if s.Latency > 0 {
			i.injected.WithLabelValues("latency").Inc()
			if err := i.sleep(r.Context(), s.Latency); err != nil {
				return // the client went away
			}
		}
		if s.ErrorRate > 0 && i.rand() < s.ErrorRate {
			i.injected.WithLabelValues("error").Inc()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{
				"error":     fmt.Sprintf("injected fault (error_rate=%v)", s.ErrorRate),
				"served_by": i.instance,
			})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// AdminHandler serves the fault settings: GET shows them, POST changes them
// from query parameters (POST /admin/fault?latency=50ms&error_rate=0.1).
func (i *Injector) AdminHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
		case http.MethodPost:
			next, err := Update(i.Settings(), r.URL.Query())
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			i.Set(next)
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(i.Settings())
	})
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
