package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

func loadFile(path string, dst reflect.Value) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // an empty file keeps every default
	}
	if err := decodeNode("", doc.Content[0], dst); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// decodeNode walks a YAML node alongside the Go value it fills, so every
// error can name the setting's path and unknown keys are refused.
func decodeNode(path string, n *yaml.Node, v reflect.Value) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	at := func(format string, args ...any) error {
		field := path
		if field == "" {
			field = "(top level)"
		}
		return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...) + fmt.Sprintf(" (line %d)", n.Line)}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	switch {
	case isScalar(v.Type()):
		if n.Kind != yaml.ScalarNode {
			return at("want a single value, got a %s", kindName(n))
		}
		if err := setLeaf(v, n.Value); err != nil {
			return at("%v", err)
		}
		return nil
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return decodeNode(path, n, v.Elem())
	case v.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return at("want a mapping of settings, got a %s", kindName(n))
		}
		fields := structFields(v)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			fv, ok := fields[key]
			if !ok {
				return at("unknown key %q (known: %s)", key, strings.Join(sortedKeys(fields), ", "))
			}
			if err := decodeNode(join(path, key), n.Content[i+1], fv); err != nil {
				return err
			}
		}
		return nil
	case v.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return at("want a list, got a %s", kindName(n))
		}
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if err := decodeNode(fmt.Sprintf("%s[%d]", path, i), item, out.Index(i)); err != nil {
				return err
			}
		}
		v.Set(out)
		return nil
	case v.Kind() == reflect.Map && v.Type().Key().Kind() == reflect.String:
		if n.Kind != yaml.MappingNode {
			return at("want a mapping, got a %s", kindName(n))
		}
		out := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			elem := reflect.New(v.Type().Elem()).Elem()
			if err := decodeNode(join(path, key), n.Content[i+1], elem); err != nil {
				return err
			}
			out.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), elem)
		}
		v.Set(out)
		return nil
	case v.Kind() == reflect.Interface:
		var anyValue any
		if err := n.Decode(&anyValue); err != nil {
			return at("%v", err)
		}
		v.Set(reflect.ValueOf(&anyValue).Elem())
		return nil
	}
	return at("settings of type %s cannot be read from YAML", v.Type())
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func structFields(v reflect.Value) map[string]reflect.Value {
	fields := map[string]reflect.Value{}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if isInline(f) {
			for name, inner := range structFields(v.Field(i)) {
				fields[name] = inner
			}
			continue
		}
		if name := yamlName(f); name != "" {
			fields[name] = v.Field(i)
		}
	}
	return fields
}

func sortedKeys(m map[string]reflect.Value) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	default:
		return "single value"
	}
}

// setLeaf parses raw into v, a scalar or a comma-separated string list.
func setLeaf(v reflect.Value, raw string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("want a duration such as 250ms or 5s, got %q", raw)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", raw)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("want a whole number, got %q", raw)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(raw, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("want a non-negative whole number, got %q", raw)
		}
		v.SetUint(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("want a number, got %q", raw)
		}
		v.SetFloat(f)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return errors.New("only lists of strings can be given as text")
		}
		var items []string
		for item := range strings.SplitSeq(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("unsupported setting type %s", v.Type())
	}
	return nil
}
