package meshconfig

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
)

const durationName protoreflect.FullName = "google.protobuf.Duration"

// normalize walks a generic YAML value alongside the message descriptor it
// should decode into. It reports unknown fields and wrong types with their
// path, drops nulls, and rewrites Go durations into protojson's "1.5s" form.
// The result is ready for json.Marshal + protojson.Unmarshal.
func normalize(f *fieldErrors, path string, v any, md protoreflect.MessageDescriptor) any {
	m, ok := v.(map[string]any)
	if !ok {
		f.add(path, "must be a mapping, got %s", describe(v))
		return nil
	}
	out := make(map[string]any, len(m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fields := md.Fields()
	for _, k := range keys {
		val := m[k]
		fp := path + "." + k
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByTextName(k)
		}
		if fd == nil {
			f.add(fp, "unknown field")
			continue
		}
		if val == nil {
			continue
		}
		if _, dup := out[fd.JSONName()]; dup {
			f.add(fp, "set twice (as %s and %s)", fd.TextName(), fd.JSONName())
			continue
		}
		var nv any
		switch {
		case fd.IsMap():
			nv = normalizeMap(f, fp, val, fd.MapValue())
		case fd.IsList():
			list, ok := val.([]any)
			if !ok {
				f.add(fp, "must be a list, got %s", describe(val))
				continue
			}
			items := make([]any, 0, len(list))
			for i, item := range list {
				items = append(items, normalizeScalar(f, fmt.Sprintf("%s[%d]", fp, i), item, fd))
			}
			nv = items
		default:
			nv = normalizeScalar(f, fp, val, fd)
		}
		out[fd.JSONName()] = nv
	}
	return out
}

func normalizeMap(f *fieldErrors, path string, v any, valueFD protoreflect.FieldDescriptor) any {
	m, ok := v.(map[string]any)
	if !ok {
		f.add(path, "must be a mapping, got %s", describe(v))
		return nil
	}
	out := make(map[string]any, len(m))
	for k, val := range m {
		out[k] = normalizeScalar(f, path+"."+k, val, valueFD)
	}
	return out
}

// normalizeScalar handles one non-repeated value of field fd.
func normalizeScalar(f *fieldErrors, path string, v any, fd protoreflect.FieldDescriptor) any {
	switch fd.Kind() {
	case protoreflect.MessageKind:
		if fd.Message().FullName() == durationName {
			return normalizeDuration(f, path, v)
		}
		return normalize(f, path, v, fd.Message())
	case protoreflect.StringKind:
		s, ok := v.(string)
		if !ok {
			f.add(path, "must be a string, got %s", describe(v))
		}
		return s
	case protoreflect.BoolKind:
		b, ok := v.(bool)
		if !ok {
			f.add(path, "must be true or false, got %s", describe(v))
		}
		return b
	case protoreflect.Uint32Kind:
		n, ok := asInt(v)
		if !ok || n < 0 || n > math.MaxUint32 {
			f.add(path, "must be a non-negative integer, got %s", describe(v))
			return 0
		}
		return n
	case protoreflect.DoubleKind:
		switch n := v.(type) {
		case int:
			return float64(n)
		case float64:
			if math.IsNaN(n) || math.IsInf(n, 0) {
				f.add(path, "must be a finite number")
				return 0
			}
			return n
		}
		f.add(path, "must be a number, got %s", describe(v))
		return 0
	}
	f.add(path, "unsupported field type %s", fd.Kind())
	return nil
}

func normalizeDuration(f *fieldErrors, path string, v any) any {
	s, ok := v.(string)
	if !ok {
		f.add(path, "must be a duration like \"250ms\" or \"1m30s\", got %s", describe(v))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		f.add(path, "must be a duration like \"250ms\" or \"1m30s\", got %q", s)
		return nil
	}
	if d < 0 {
		f.add(path, "must not be negative")
		return nil
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case uint64:
		if n > math.MaxInt64 {
			return 0, false
		}
		return int64(n), true
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int64(n), true
		}
	}
	return 0, false
}

// describe names a generic value's type for error messages.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("string %q", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case int, int64, uint64, float64:
		return fmt.Sprintf("number %v", x)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}
