package harness

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestMainPackages(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"ca/main.go":          "package main\n\nfunc main() {}\n",
		"ca/go.mod":           "module example.com/ca\n",
		"kit/doc.go":          "// Package kit is a library.\npackage kit\n",
		"empty/go.mod":        "module example.com/empty\n",
		"shop/main.go":        "package main\n\nfunc main() {}\n",
		"shop/main_test.go":   "package main\n",
		"meshctl/cmd.go":      "package main\n\nfunc main() {}\n",
		"meshctl/README.md":   "x",
		"notes.txt":           "not a dir",
		"onlytests/x_test.go": "package onlytests\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := mainPackages(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ca", "meshctl", "shop"}; !slices.Equal(got, want) {
		t.Errorf("mainPackages = %v, want %v", got, want)
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "test", "harness", "build.go")); err != nil {
		t.Errorf("RepoRoot() = %s does not hold test/harness: %v", root, err)
	}
}

func TestKeepLog(t *testing.T) {
	src := filepath.Join(t.TempDir(), "users.log")
	if err := os.WriteFile(src, []byte("boom\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kept := keepLog("TestKeepLog/with space:colon", "users", src)
	root, _ := RepoRoot()
	want := filepath.Join(root, "test", ".artifacts", "logs", "TestKeepLog", "with_space_colon", "users.log")
	t.Cleanup(func() { os.RemoveAll(filepath.Join(root, "test", ".artifacts", "logs", "TestKeepLog")) })
	if kept != want {
		t.Fatalf("keepLog = %s, want %s", kept, want)
	}
	if data, err := os.ReadFile(kept); err != nil || string(data) != "boom\n" {
		t.Errorf("kept log = %q, %v", data, err)
	}
}
