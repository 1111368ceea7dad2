package contract

import (
	"reflect"
	"testing"
)

func TestExposedNames(t *testing.T) {
	text := `# HELP a_total A.
# TYPE a_total counter
a_total{code="200"} 3
# TYPE b_seconds histogram
b_seconds_bucket{le="+Inf"} 1
b_seconds_sum 0.1
b_seconds_count 1
# TYPE c summary
# TYPE d gauge
d 1
untyped_metric 7
`
	want := map[string]bool{
		"a_total": true, "b_seconds": true, "b_seconds_bucket": true, "b_seconds_sum": true, "b_seconds_count": true,
		"c": true, "c_sum": true, "c_count": true, "d": true, "untyped_metric": true,
	}
	if got := exposedNames(text); !reflect.DeepEqual(got, want) {
		t.Errorf("exposedNames = %v, want %v", got, want)
	}
}
