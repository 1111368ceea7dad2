package jointoken

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var (
	t0    = time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	idReg = spiffeid.RequireFromString("spiffe://switchyard.local/system/registry")
	idCP  = spiffeid.RequireFromString("spiffe://switchyard.local/system/controlplane")
)

func tokens() []Token {
	return []Token{
		{Value: "reusable-secret", ID: idReg},
		{Value: "expiring-secret", ID: idReg, Expires: t0.Add(time.Hour)},
		{Value: "once-secret", ID: idCP, SingleUse: true},
	}
}

func TestRedeem(t *testing.T) {
	s, err := NewStore(tokens(), "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		token   string
		now     time.Time
		wantID  spiffeid.ID
		wantErr error
	}{
		{"reusable", "reusable-secret", t0, idReg, nil},
		{"reusable again", "reusable-secret", t0.Add(1000 * time.Hour), idReg, nil},
		{"before expiry", "expiring-secret", t0.Add(59 * time.Minute), idReg, nil},
		{"at expiry", "expiring-secret", t0.Add(time.Hour), spiffeid.ID{}, ErrExpired},
		{"unknown", "nope", t0, spiffeid.ID{}, ErrUnknown},
		{"empty", "", t0, spiffeid.ID{}, ErrUnknown},
		{"single use first", "once-secret", t0, idCP, nil},
		{"single use reused", "once-secret", t0, spiffeid.ID{}, ErrUsed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := s.Redeem(tc.token, tc.now, nil)
			if !errors.Is(err, tc.wantErr) || id != tc.wantID {
				t.Fatalf("Redeem = %v, %v; want %v, %v", id, err, tc.wantID, tc.wantErr)
			}
			if err != nil && tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Fatalf("error leaks the token: %v", err)
			}
		})
	}
}

func TestFailedCheckDoesNotBurnToken(t *testing.T) {
	s, err := NewStore(tokens(), "")
	if err != nil {
		t.Fatal(err)
	}
	bad := errors.New("bad CSR")
	if _, err := s.Redeem("once-secret", t0, func(spiffeid.ID) error { return bad }); !errors.Is(err, bad) {
		t.Fatalf("err = %v, want check error", err)
	}
	if _, err := s.Redeem("once-secret", t0, nil); err != nil {
		t.Fatalf("token burned by a refused request: %v", err)
	}
}

func TestUsedTokensSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "used")
	s, err := NewStore(tokens(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Redeem("once-secret", t0, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := NewStore(tokens(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Redeem("once-secret", t0, nil); !errors.Is(err, ErrUsed) {
		t.Fatalf("after restart err = %v, want ErrUsed", err)
	}
}

func TestNewStoreRejects(t *testing.T) {
	if _, err := NewStore([]Token{{Value: "", ID: idReg}}, ""); err == nil {
		t.Fatal("empty token accepted")
	}
	if _, err := NewStore([]Token{{Value: "a", ID: idReg}, {Value: "a", ID: idCP}}, ""); err == nil || strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("duplicate: err = %v", err)
	}
}

func TestFingerprint(t *testing.T) {
	fp := Fingerprint("reusable-secret")
	if len(fp) != 12 || strings.Contains(fp, "secret") || fp != Fingerprint("reusable-secret") || fp == Fingerprint("other") {
		t.Fatalf("fingerprint %q", fp)
	}
}
