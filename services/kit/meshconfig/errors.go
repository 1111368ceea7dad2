package meshconfig

import (
	"fmt"
	"strings"
)

// FieldError is one reason a document was refused: the field path inside the
// document (e.g. "spec.rules[0].backends[1].weight") and why.
type FieldError struct {
	Kind   string
	Name   string
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Kind != "" {
		b.WriteString(e.Kind)
		b.WriteByte(' ')
	}
	if e.Name != "" {
		fmt.Fprintf(&b, "%q ", e.Name)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// fieldErrors collects FieldErrors for one document.
type fieldErrors struct {
	kind, name string
	errs       []error
}

func (f *fieldErrors) add(field, format string, args ...any) {
	f.errs = append(f.errs, &FieldError{Kind: f.kind, Name: f.name, Field: field, Reason: fmt.Sprintf(format, args...)})
}
