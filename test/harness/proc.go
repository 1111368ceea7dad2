package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Defaults for a Process that leaves the corresponding field zero.
const (
	DefaultReadyTimeout = 20 * time.Second
	DefaultStopGrace    = 10 * time.Second
	// logTail is how much of a process log is dumped when a test fails.
	logTail = 64 << 10
)

// Process describes a binary to run.
type Process struct {
	// Name labels the process in logs and errors; it defaults to the base
	// name of Binary.
	Name string
	// Binary is the executable's path, usually from Binary(t, name).
	Binary string
	Args   []string
	// Env is added to a copy of the test's environment from which every
	// SWITCHYARD_* and OTEL_* variable has been removed, so a process sees
	// only the settings its test gives it.
	Env []string
	// Dir is the working directory; empty means a fresh temporary one.
	Dir string
	// ReadyURL, if set, must answer 200 before Start returns.
	ReadyURL     string
	ReadyTimeout time.Duration
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL.
	StopGrace time.Duration
}

// Proc is a running (or stopped) process started by Start.
type Proc struct {
	spec    Process
	logPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{} // closed when the current run has exited
	waitErr error
}

// Start runs p, waits until p.ReadyURL answers 200, and registers a cleanup
// that stops the process and, if the test failed, logs the tail of its output.
// If the process exits or does not become ready in time, the test fails with
// the tail of its log.
func Start(t testing.TB, p Process) *Proc {
	t.Helper()
	if p.Binary == "" {
		t.Fatalf("harness: Start: Process.Binary is empty")
	}
	if p.Name == "" {
		p.Name = filepath.Base(p.Binary)
	}
	if p.ReadyTimeout == 0 {
		p.ReadyTimeout = DefaultReadyTimeout
	}
	if p.StopGrace == 0 {
		p.StopGrace = DefaultStopGrace
	}
	if p.Dir == "" {
		p.Dir = t.TempDir()
	}
	proc := &Proc{spec: p, logPath: filepath.Join(t.TempDir(), p.Name+".log")}
	t.Cleanup(func() {
		if err := proc.Stop(); err != nil {
			t.Logf("harness: %s: %v", p.Name, err)
		}
		if t.Failed() {
			kept := keepLog(t.Name(), p.Name, proc.logPath)
			t.Logf("harness: %s log (whole log kept at %s):\n%s", p.Name, kept, proc.LogTail(logTail))
		}
	})
	if err := proc.start(); err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := proc.waitReady(); err != nil {
		t.Fatalf("harness: %v", err)
	}
	return proc
}

// Name returns the process's label.
func (p *Proc) Name() string { return p.spec.Name }

// LogPath returns the file that holds the process's stdout and stderr, across
// restarts.
func (p *Proc) LogPath() string { return p.logPath }

// Log returns everything the process has written so far.
func (p *Proc) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", p.logPath, err)
	}
	return string(b)
}

// LogTail returns at most the last n bytes of the process's output.
func (p *Proc) LogTail(n int) string {
	s := p.Log()
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "…\n" + s
}

// PID returns the operating-system id of the current run.
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Exited is closed when the current run of the process has exited.
func (p *Proc) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// ExitCode returns the exit status of the last run, -1 if it was killed by a
// signal or is still running.
func (p *Proc) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// Stop sends SIGTERM, waits up to the grace period, then sends SIGKILL. It
// returns an error if the process had to be killed or exited unsuccessfully;
// stopping a process that is not running returns nil.
func (p *Proc) Stop() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		p.mu.Lock()
		err := p.waitErr
		p.mu.Unlock()
		if err != nil {
			return fmt.Errorf("stop %s (pid %d) with SIGTERM: %w", p.spec.Name, cmd.Process.Pid, err)
		}
		return nil
	case <-time.After(p.spec.StopGrace):
	}
	_ = cmd.Process.Kill()
	<-done
	return fmt.Errorf("stop %s (pid %d): still running %s after SIGTERM, killed", p.spec.Name, cmd.Process.Pid, p.spec.StopGrace)
}

// Kill sends SIGKILL and waits for the process to exit, as a crash would.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Signal sends sig to the running process.
func (p *Proc) Signal(sig os.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("signal %s: not started", p.spec.Name)
	}
	return p.cmd.Process.Signal(sig)
}

// Restart stops the process if it is running, starts it again with the same
// arguments and waits until it is ready. Its output is appended to the same
// log.
func (p *Proc) Restart(t testing.TB) {
	t.Helper()
	if err := p.Stop(); err != nil {
		t.Logf("harness: restart: %v", err)
	}
	if err := p.start(); err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := p.waitReady(); err != nil {
		t.Fatalf("harness: %v", err)
	}
}

func (p *Proc) start() error {
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: open log: %w", p.spec.Name, err)
	}
	fmt.Fprintf(logFile, "=== harness: %s %s\n", p.spec.Binary, strings.Join(p.spec.Args, " "))
	cmd := exec.Command(p.spec.Binary, p.spec.Args...)
	cmd.Dir = p.spec.Dir
	cmd.Env = processEnv(p.spec.Env)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("start %s: %w", p.spec.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.logFile, p.waitErr = cmd, done, logFile, nil
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logFile, "=== harness: %s exited: %v\n", p.spec.Name, exitDescription(cmd, err))
		_ = logFile.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

func exitDescription(cmd *exec.Cmd, err error) string {
	if err == nil {
		return "status 0"
	}
	if cmd.ProcessState != nil {
		return cmd.ProcessState.String()
	}
	return err.Error()
}

func (p *Proc) waitReady() error {
	if p.spec.ReadyURL == "" {
		return nil
	}
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(p.spec.ReadyTimeout)
	lastErr := errors.New("no answer yet")
	for time.Now().Before(deadline) {
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited before it was ready (%s: %v); log:\n%s",
				p.spec.Name, p.spec.ReadyURL, lastErr, p.LogTail(logTail))
		default:
		}
		lastErr = checkReady(client, p.spec.ReadyURL)
		if lastErr == nil {
			return nil
		}
		time.Sleep(PollInterval)
	}
	return fmt.Errorf("%s not ready within %s (%s: %v); log:\n%s",
		p.spec.Name, p.spec.ReadyTimeout, p.spec.ReadyURL, lastErr, p.LogTail(logTail))
}

func checkReady(client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// keepLog copies a failed test's process log to
// test/.artifacts/logs/<test>/<process>.log, where CI can collect it after
// the test's temporary directory is gone, and returns where it went (or the
// original path if copying failed).
func keepLog(test, name, path string) string {
	root, err := RepoRoot()
	if err != nil {
		return path
	}
	safe := strings.Map(func(r rune) rune {
		if r == '/' || r == '-' || r == '_' || r == '.' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
			return r
		}
		return '_'
	}, test)
	dir := filepath.Join(root, "test", ".artifacts", "logs", safe)
	data, err := os.ReadFile(path)
	if err != nil || os.MkdirAll(dir, 0o755) != nil {
		return path
	}
	dst := filepath.Join(dir, name+".log")
	if os.WriteFile(dst, data, 0o644) != nil {
		return path
	}
	return dst
}

// processEnv is the test's environment without Switchyard or OpenTelemetry
// settings, plus extra.
func processEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SWITCHYARD_") || strings.HasPrefix(kv, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// Result is how a process that ran to completion ended.
type Result struct {
	// Code is the exit status, -1 if the process was killed by a signal.
	Code int
	// Output is its stdout and stderr, interleaved.
	Output string
}

// RunToExit runs p (ReadyURL is ignored) and waits for it to exit, killing it
// and failing the test if it runs longer than timeout. It is for checking how a
// binary rejects bad input.
func RunToExit(t testing.TB, p Process, timeout time.Duration) Result {
	t.Helper()
	if p.Dir == "" {
		p.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.Binary, p.Args...)
	cmd.Dir = p.Dir
	cmd.Env = processEnv(p.Env)
	cmd.SysProcAttr = sysProcAttr()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("harness: %s %s still running after %s; output:\n%s",
			p.Binary, strings.Join(p.Args, " "), timeout, out)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("harness: run %s: %v", p.Binary, err)
	}
	return Result{Code: cmd.ProcessState.ExitCode(), Output: string(out)}
}
