package logging_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchyard-mesh/switchyard/services/kit/logging"
)

func TestNewJSONAtLevel(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(logging.Config{Level: "warn", Format: "json"}, &buf)
	log.Info("hidden")
	log.Warn("shown", logging.KeyService, "orders")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1: %q", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if rec["msg"] != "shown" || rec["service"] != "orders" {
		t.Fatalf("record = %v", rec)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		cfg   logging.Config
		field string
	}{
		{logging.Config{Level: "debug", Format: "text"}, ""},
		{logging.DefaultConfig(), ""},
		{logging.Config{Level: "loud", Format: "json"}, "level"},
		{logging.Config{Level: "info", Format: "xml"}, "format"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (err == nil) != (tt.field == "") || (err != nil && !strings.HasPrefix(err.Error(), tt.field+":")) {
			t.Errorf("Validate(%+v) = %v, want field %q", tt.cfg, err, tt.field)
		}
	}
}
