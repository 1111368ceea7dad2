package cliflags

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantType string
		wantJSON bool
		wantPos  []string
		wantErr  bool
	}{
		{"flags first", []string{"-type", "cds", "p1"}, "cds", false, []string{"p1"}, false},
		{"flags after", []string{"p1", "-type", "cds"}, "cds", false, []string{"p1"}, false},
		{"interleaved", []string{"a", "-json", "b", "-type=eds", "c"}, "eds", true, []string{"a", "b", "c"}, false},
		{"no args", nil, "", false, nil, false},
		{"double dash keeps the rest", []string{"a", "--", "-type", "x"}, "", false, []string{"a", "-type", "x"}, false},
		{"unknown flag", []string{"a", "-nope"}, "", false, nil, true},
		{"missing value", []string{"a", "-type"}, "", false, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			typ := fs.String("type", "", "")
			asJSON := fs.Bool("json", false, "")
			err := Parse(fs, tc.args)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if *typ != tc.wantType || *asJSON != tc.wantJSON || !slices.Equal(fs.Args(), tc.wantPos) && len(fs.Args())+len(tc.wantPos) > 0 {
				t.Errorf("type=%q json=%v args=%q, want %q %v %q", *typ, *asJSON, fs.Args(), tc.wantType, tc.wantJSON, tc.wantPos)
			}
		})
	}
}
