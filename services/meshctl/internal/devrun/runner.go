package devrun

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Runner starts a plan's processes and stops them again.
type Runner struct {
	Plan   *Plan
	BinDir string
	Out    io.Writer
	// ReadyTimeout bounds the wait for one process to become ready.
	ReadyTimeout time.Duration
	// StopTimeout is how long a process may take to exit after SIGTERM
	// before it is killed.
	StopTimeout time.Duration

	mu      sync.Mutex // serialises writes to Out
	started []running
	exited  chan string
}

type running struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
}

// Run starts every process, prints the links, and waits until ctx is
// cancelled or a process exits; then it stops all it started.
func (r *Runner) Run(ctx context.Context) error {
	if err := os.MkdirAll(r.Plan.StateDir, 0o700); err != nil {
		return fmt.Errorf("create state_dir: %w", err)
	}
	r.exited = make(chan string, len(r.Plan.Processes))
	defer r.stopAll()
	for _, proc := range r.Plan.Processes {
		if err := r.start(ctx, proc); err != nil {
			return err
		}
	}
	r.printf("devrun", "all %d processes are ready", len(r.Plan.Processes))
	for _, link := range r.Plan.Links {
		r.printf("devrun", "%-28s %s", link.Title, link.URL)
	}
	r.printf("devrun", "press Ctrl-C to stop them all")
	select {
	case <-ctx.Done():
		return nil
	case name := <-r.exited:
		return fmt.Errorf("%s exited; stopping the rest (its output is above)", name)
	}
}

func (r *Runner) start(ctx context.Context, proc Process) error {
	path := filepath.Join(r.BinDir, proc.Binary)
	cmd := exec.Command(path, proc.Args...)
	cmd.Env = os.Environ()
	for k, v := range proc.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = childAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s (%s): %w; run `make build` first", proc.Name, path, err)
	}
	done := make(chan struct{})
	r.started = append(r.started, running{cmd: cmd, done: done})
	var copied sync.WaitGroup
	copied.Add(1)
	go func() {
		defer copied.Done()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			r.printf(proc.Name, "%s", sc.Text())
		}
	}()
	go func() {
		copied.Wait()
		_ = cmd.Wait()
		close(done)
		r.exited <- proc.Name
	}()
	if proc.Ready == "" {
		return nil
	}
	return r.waitReady(ctx, proc)
}

func (r *Runner) waitReady(ctx context.Context, proc Process) error {
	deadline := time.Now().Add(r.ReadyTimeout)
	client := &http.Client{Timeout: time.Second}
	var last error
	for time.Now().Before(deadline) {
		resp, err := client.Get(proc.Ready)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				r.printf("devrun", "%s is ready", proc.Name)
				return nil
			}
			err = fmt.Errorf("%s answered %s", proc.Ready, resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case name := <-r.exited:
			return fmt.Errorf("%s exited before it was ready", name)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %s: %w", proc.Name, r.ReadyTimeout, last)
}

// stopAll sends SIGTERM to every started process, newest first, and kills
// any that outlive StopTimeout.
func (r *Runner) stopAll() {
	for i := len(r.started) - 1; i >= 0; i-- {
		p := r.started[i]
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(r.StopTimeout):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	r.printf("devrun", "stopped %d processes", len(r.started))
}

func (r *Runner) printf(name, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.Out, "%-*s | %s\n", r.nameWidth(), name, fmt.Sprintf(format, args...))
}

// nameWidth is the width of the name column: the longest process name, and
// at least 14 so short plans still line up with "devrun".
func (r *Runner) nameWidth() int {
	w := 14
	for _, p := range r.Plan.Processes {
		w = max(w, len(p.Name))
	}
	return w
}
