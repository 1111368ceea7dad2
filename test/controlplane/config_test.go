package controlplane_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mesh/switchyard/test/harness"
)

// TestBadConfigNamesTheField: the binary refuses bad settings at start and
// in `controlplane validate`, exiting non-zero with the field named.
func TestBadConfigNamesTheField(t *testing.T) {
	bin := harness.Binary(t, "controlplane")
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.yaml")
	if err := os.WriteFile(unknown, []byte("insecure: true\nxds_adr: :1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing identity", []string{}, "identity.join_token"},
		{"max delay below debounce", []string{"-insecure", "-debounce", "2s", "-max_delay", "1s"}, "max_delay"},
		{"bad trust domain", []string{"-insecure", "-trust_domain", "Not Valid"}, "trust_domain"},
		{"unknown key in file", []string{"-config", unknown}, "xds_adr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, args := range [][]string{tc.args, append([]string{"validate"}, tc.args...)} {
				r := harness.RunToExit(t, harness.Process{Binary: bin, Args: append(args, "-admin.addr", "127.0.0.1:0")}, 10*time.Second)
				if r.Code == 0 || !strings.Contains(r.Output, tc.want) {
					t.Errorf("controlplane %s: exit %d, output lacks %q:\n%s", strings.Join(args, " "), r.Code, tc.want, r.Output)
				}
			}
		})
	}
	if r := harness.RunToExit(t, harness.Process{Binary: bin, Args: []string{"validate", "-insecure"}}, 10*time.Second); r.Code != 0 {
		t.Errorf("validate of a good config: exit %d\n%s", r.Code, r.Output)
	}
}
