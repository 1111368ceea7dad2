package harness

import (
	"bytes"
	"errors"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
)

// BinEnv names the environment variable pointing at a directory of prebuilt
// binaries (as `make build` leaves them). When it is set, Binary takes
// binaries from there and builds only those missing from it.
const BinEnv = "SWITCHYARD_BIN"

var (
	builds   sync.Map // binary name -> *buildResult
	rootOnce sync.Once
	rootDir  string
	rootErr  error
	binOnce  sync.Once
	binDir   string
	binErr   error
)

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// Binary returns the path of the named binary (a directory under services/
// holding a main package), building it with CGO_ENABLED=0 the first time any
// test in this process asks for it. A build failure fails the test with the
// compiler's output.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if dir := os.Getenv(BinEnv); dir != "" {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
		t.Logf("harness: %s not found in $%s=%s; building it", name, BinEnv, dir)
	}
	v, _ := builds.LoadOrStore(name, &buildResult{})
	res := v.(*buildResult)
	res.once.Do(func() { res.path, res.err = buildBinary(name) })
	if res.err != nil {
		t.Fatalf("harness: %v", res.err)
	}
	return res.path
}

// Binaries lists the binaries in the repository: every directory directly
// under services/ whose Go files form a main package.
func Binaries(t testing.TB) []string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	names, err := mainPackages(filepath.Join(root, "services"))
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return names
}

// RepoRoot returns the directory holding go.work, found by walking up from the
// working directory.
func RepoRoot() (string, error) {
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = fmt.Errorf("find repository root: %w", err)
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = errors.New("find repository root: no go.work above the working directory")
				return
			}
			dir = parent
		}
	})
	return rootDir, rootErr
}

// mainPackages returns the names of the directories under servicesDir whose
// top-level Go files are package main.
func mainPackages(servicesDir string) ([]string, error) {
	entries, err := os.ReadDir(servicesDir)
	if err != nil {
		return nil, fmt.Errorf("list binaries: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		pkg, err := build.ImportDir(filepath.Join(servicesDir, e.Name()), 0)
		if err != nil {
			var noGo *build.NoGoError
			if errors.As(err, &noGo) {
				continue
			}
			return nil, fmt.Errorf("inspect services/%s: %w", e.Name(), err)
		}
		if pkg.IsCommand() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// outputDir is where this process puts the binaries it builds: a stable
// directory under test/.artifacts so that repeated runs reuse one place rather
// than leaving a temporary directory behind per run.
func outputDir() (string, error) {
	binOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			binErr = err
			return
		}
		binDir = filepath.Join(root, "test", ".artifacts", "bin")
		if err := os.MkdirAll(binDir, 0o755); err != nil {
			binErr = fmt.Errorf("create %s: %w", binDir, err)
		}
	})
	return binDir, binErr
}

func buildBinary(name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir, err := outputDir()
	if err != nil {
		return "", err
	}
	src := filepath.Join(root, "services", name)
	if _, err := os.Stat(src); err != nil {
		return "", fmt.Errorf("build %s: no such binary: %w", name, err)
	}
	// Build to a private name and rename into place: other test processes
	// of the same run may be building or executing the same binary.
	tmp, err := os.CreateTemp(dir, name+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	tmpPath := tmp.Name()
	_ = tmp.Close()
	defer os.Remove(tmpPath)

	cmd := exec.Command("go", "build", "-tags", "grpcnotrace", "-o", tmpPath, ".") // as the Makefile builds
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", name, err, out.String())
	}
	dst := filepath.Join(dir, name)
	if err := os.Rename(tmpPath, dst); err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	return dst, nil
}
