package configcmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLineDiff(t *testing.T) {
	tests := []struct{ name, a, b, want string }{
		{"equal", "a\nb\n", "a\nb\n", ""},
		{"changed line", "kind: X\nweight: 90\n", "kind: X\nweight: 80\n", "  kind: X\n+ weight: 80\n- weight: 90\n"},
		{"new document", "", "a\n", "+ a\n"},
		{"removed line", "a\nb\nc\n", "a\nc\n", "  a\n- b\n  c\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lineDiff(tc.a, tc.b); got != tc.want {
				t.Errorf("lineDiff =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestWriteStatus(t *testing.T) {
	var b bytes.Buffer
	writeStatus(&b, []proxyEntry{
		{ID: "orders-1", Kind: "sidecar", Service: "orders", Connected: true, NACKs: 1,
			Acked:   map[string]string{"lds": "aaaa", "cds": "old", "eds": "e1"},
			Current: map[string]string{"lds": "aaaa", "cds": "new", "eds": "e1", "rds": "r1"}},
		{ID: "grpc-client", Kind: "proxyless", Connected: false, Acked: map[string]string{}, Current: map[string]string{}},
	})
	out := b.String()
	for _, want := range []string{"PROXY", "grpc-client", "orders-1", "✓ aaaa", "old→new", "pending→r1", "-"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "grpc-client") > strings.Index(out, "orders-1") {
		t.Error("proxies not sorted by ID")
	}
}

func TestApplyRefusesInvalidBeforeConnecting(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "bad.yaml")
	doc := "kind: HTTPRoute\nname: checkout\nspec:\n  service: orders\n  rules:\n    - backends: [{service: a, weight: 50}, {service: b, weight: 150}]\n"
	if err := os.WriteFile(f, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	// No registry or ca is reachable at these addresses: the error must come
	// from validation, before any connection is tried.
	err := Apply(context.Background(), []string{"-f", f, "-registry", "127.0.0.1:1", "-ca", "127.0.0.1:1"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), `HTTPRoute "checkout" spec.rules[0].backends[1].weight: must be 0..100`) ||
		!strings.Contains(err.Error(), "nothing applied") {
		t.Fatalf("err = %v", err)
	}
}
