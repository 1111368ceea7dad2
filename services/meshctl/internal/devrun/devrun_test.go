package devrun

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunStartsInOrderAndStopsAllOnCancel(t *testing.T) {
	ready := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ready.Close()
	plan := &Plan{
		StateDir: t.TempDir(),
		Processes: []Process{
			{Name: "first", Binary: "sh", Args: []string{"-c", "echo hello from first; exec sleep 30"}, Ready: ready.URL},
			// Ignores SIGTERM, so the runner must escalate to SIGKILL.
			{Name: "stubborn", Binary: "sh", Args: []string{"-c", "trap '' TERM; echo $GREETING; while :; do sleep 0.1; done"}, Env: map[string]string{"GREETING": "hi"}},
		},
		Links: []Link{{Title: "Frontend", URL: "http://example.invalid"}},
	}
	if err := plan.Validate(); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	r := &Runner{Plan: plan, BinDir: "/bin", Out: out, ReadyTimeout: 5 * time.Second, StopTimeout: 300 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "press Ctrl-C") || !strings.Contains(out.String(), "stubborn       | hi") {
		if time.Now().After(deadline) {
			t.Fatalf("runner never became ready:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("runner did not stop:\n%s", out)
	}
	for _, p := range r.started {
		select {
		case <-p.done:
		default:
			t.Fatalf("%s still running after Run returned", p.cmd.Path)
		}
	}
	for _, want := range []string{"first          | hello from first", "Frontend", "stopped 2 processes"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestRunFailsWhenAProcessExits(t *testing.T) {
	plan := &Plan{StateDir: t.TempDir(), Processes: []Process{
		{Name: "steady", Binary: "sleep", Args: []string{"30"}},
		{Name: "crasher", Binary: "sh", Args: []string{"-c", "exit 3"}},
	}}
	r := &Runner{Plan: plan, BinDir: "/bin", Out: &syncBuffer{}, ReadyTimeout: time.Second, StopTimeout: time.Second}
	err := r.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "crasher exited") {
		t.Fatalf("Run = %v, want crasher named", err)
	}
}

func TestRunFailsOnMissingBinary(t *testing.T) {
	plan := &Plan{StateDir: t.TempDir(), Processes: []Process{{Name: "ghost", Binary: "no-such-binary"}}}
	r := &Runner{Plan: plan, BinDir: t.TempDir(), Out: &syncBuffer{}, ReadyTimeout: time.Second, StopTimeout: time.Second}
	if err := r.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("Run = %v", err)
	}
}

func TestPlanValidate(t *testing.T) {
	tests := []struct {
		name string
		plan Plan
		want string
	}{
		{"empty", Plan{StateDir: "x"}, "processes: must list"},
		{"no state", Plan{Processes: []Process{{Name: "a", Binary: "a"}}}, "state_dir"},
		{"bad name", Plan{StateDir: "x", Processes: []Process{{Name: "A b", Binary: "a"}}}, "processes[0].name"},
		{"dup", Plan{StateDir: "x", Processes: []Process{{Name: "a", Binary: "a"}, {Name: "a", Binary: "a"}}}, "processes[1].name: \"a\" is used twice"},
		{"no binary", Plan{StateDir: "x", Processes: []Process{{Name: "a"}}}, "processes[0].binary"},
		{"bad ready", Plan{StateDir: "x", Processes: []Process{{Name: "a", Binary: "a", Ready: "tcp://x"}}}, "processes[0].ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.plan.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}
