package authority

import (
	"encoding/pem"
	"math/big"
	"os"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
)

func bundleOf(a *Authority) *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(a.TrustDomain(), a.Roots())
}

func newSerialT(t *testing.T) *big.Int {
	n, err := newSerial()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
