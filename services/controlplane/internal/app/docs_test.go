package app

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
)

func TestDecodeDocs(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	raw := []*registryv1.ConfigDocument{
		{Kind: "ServiceDefaults", Name: "redis", Body: []byte(`{"protocol":"tcp","outbound_port":6379}`)},
		{Kind: "ServiceDefaults", Name: "cache", Body: []byte(`{"protocol":"tcp","outbound_port":6379}`)},
		{Kind: "ServiceDefaults", Name: "broken", Body: []byte(`{"protocol":"udp"}`)},
		{Kind: "ServiceDefaults", Name: "db", Body: []byte(`{"protocol":"tcp","outbound_port":5432}`)},
	}
	docs, bad := decodeDocs(log, raw)
	// The invalid document is skipped; the conflicting one is kept (its
	// cluster and inbound side still apply) but counted and logged.
	if len(docs) != 3 || bad != 2 {
		t.Fatalf("decodeDocs: %d documents, %d bad; want 3, 2", len(docs), bad)
	}
	for _, want := range []string{`spec.protocol: must be one of`, `ServiceDefaults \"redis\" spec.outbound_port: 6379 is already the outbound_port of ServiceDefaults \"cache\"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}
