package devrun

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runnerPIDFileEnv makes the test binary act as a runner (see TestMain), so
// a test can kill -9 it and watch what happens to its child.
const runnerPIDFileEnv = "DEVRUN_TEST_CHILD_PIDFILE"

func TestMain(m *testing.M) {
	if pidFile := os.Getenv(runnerPIDFileEnv); pidFile != "" {
		plan := &Plan{StateDir: os.TempDir(), Processes: []Process{
			{Name: "child", Binary: "sh", Args: []string{"-c", "echo $$ > " + pidFile + "; exec sleep 60"}},
		}}
		r := &Runner{Plan: plan, BinDir: "/bin", Out: io.Discard, ReadyTimeout: time.Second, StopTimeout: time.Second}
		_ = r.Run(context.Background())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A runner killed with SIGKILL cannot stop its children; the kernel must.
func TestChildrenDieWithKilledRunner(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	runner := exec.Command(os.Args[0], "-test.run=^$")
	runner.Env = append(os.Environ(), runnerPIDFileEnv+"="+pidFile)
	if err := runner.Start(); err != nil {
		t.Fatal(err)
	}
	var child int
	deadline := time.Now().Add(10 * time.Second)
	for child == 0 {
		if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
			child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if time.Now().After(deadline) {
			_ = runner.Process.Kill()
			t.Fatal("the runner never started its child")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := runner.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = runner.Wait()
	for alive(child) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("child %d outlived its killed runner", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie waiting to be reaped does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}
