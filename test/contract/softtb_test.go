package contract

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// softTB records failures instead of failing the test, so a binary that is
// only tried can fail to start without failing the run. Fatal ends the
// calling goroutine as the real one does, so callers run the code under test
// in a goroutine of their own. Logs and cleanups go to the real test.
type softTB struct {
	testing.TB

	mu     sync.Mutex
	failed bool
	msgs   []string
}

func (s *softTB) record(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed = true
	if msg != "" {
		s.msgs = append(s.msgs, msg)
	}
}

func (s *softTB) message() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.msgs, "\n")
}

func (s *softTB) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *softTB) Fail()                             { s.record("") }
func (s *softTB) Error(args ...any)                 { s.record(fmt.Sprint(args...)) }
func (s *softTB) Errorf(format string, args ...any) { s.record(fmt.Sprintf(format, args...)) }
func (s *softTB) FailNow()                          { s.record(""); runtime.Goexit() }
func (s *softTB) Fatal(args ...any)                 { s.record(fmt.Sprint(args...)); runtime.Goexit() }
func (s *softTB) Fatalf(format string, args ...any) {
	s.record(fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (s *softTB) Helper() {}
