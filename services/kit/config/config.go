// Package config loads a binary's settings in layers — built-in defaults, an
// optional YAML file, SWITCHYARD_* environment variables, then command-line
// flags — into a typed struct, and validates the result.
//
// Decoding is strict: an unknown key or a value of the wrong type is an error
// that names the setting by its YAML path (for example "admin.addr"), so an
// operator sees which line to fix. Each leaf setting is reachable from all
// three sources under one name: YAML path "registry.raft.addr" is the flag
// -registry.raft.addr and the variable SWITCHYARD_REGISTRY_RAFT_ADDR.
//
// Validation is passed in as a function (the settings struct's Validate
// method, reporting every invalid setting, each as a FieldError where
// possible) rather than called through an interface: an interface call of a
// method named Validate would make the linker keep the Validate methods of
// every type in the binary, and the Envoy protos alone have 1,475 of them
// (7 MB of the sidecar's 32).
package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"
)

// EnvPrefix starts every environment variable the loader reads.
const EnvPrefix = "SWITCHYARD_"

// FieldError says which setting is wrong and why.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Errorf returns a FieldError for field with a formatted reason.
func Errorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Nest prefixes the field names in err (a FieldError or a join of them) with
// prefix, so a sub-config can validate itself with names relative to its own
// root: Nest("admin", admin.Validate()) reports "admin.addr".
func Nest(prefix string, err error) error {
	if err == nil {
		return nil
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var errs []error
		for _, e := range joined.Unwrap() {
			errs = append(errs, Nest(prefix, e))
		}
		return errors.Join(errs...)
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return &FieldError{Field: prefix + "." + fe.Field, Reason: fe.Reason}
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// Subcommand splits a leading word such as "validate" off args. It returns
// "" and args unchanged when args start with a flag.
func Subcommand(args []string) (string, []string) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", args
	}
	return args[0], args[1:]
}

// Load fills dst, a pointer to a struct already holding its defaults, from
// the file named by -config (or SWITCHYARD_CONFIG), the environment and the
// flags in args, then checks it with validate. Flags are registered on fs,
// one per leaf setting, so -h lists them all with their defaults.
func Load(fs *flag.FlagSet, args []string, dst any, validate func() error) error {
	root := reflect.ValueOf(dst)
	if root.Kind() != reflect.Pointer || root.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config.Load needs a pointer to a struct, got %T", dst)
	}
	leaves := collectLeaves("", root.Elem())

	configFile := fs.String("config", os.Getenv(EnvPrefix+"CONFIG"), "path to a YAML config file (env "+EnvPrefix+"CONFIG)")
	flagged := make(map[string]*flagValue, len(leaves))
	for _, l := range leaves {
		fv := &flagValue{leaf: l}
		flagged[l.path] = fv
		fs.Var(fv, l.path, fmt.Sprintf("%s (env %s)", l.help, envName(l.path)))
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: settings are given as -name=value flags", fs.Args())
	}

	if *configFile != "" {
		if err := loadFile(*configFile, root.Elem()); err != nil {
			return err
		}
		// The file may have replaced nested structs and slices, so leaf
		// addresses are taken again before the env and flag layers.
		leaves = collectLeaves("", root.Elem())
	}
	for _, l := range leaves {
		if raw, ok := os.LookupEnv(envName(l.path)); ok {
			if err := setLeaf(l.value, raw); err != nil {
				return fmt.Errorf("%s (env %s): %w", l.path, envName(l.path), err)
			}
		}
	}
	var flagErr error
	fs.Visit(func(f *flag.Flag) {
		fv, ok := flagged[f.Name]
		if !ok || flagErr != nil {
			return
		}
		for _, l := range leaves {
			if l.path == f.Name {
				if err := setLeaf(l.value, fv.raw); err != nil {
					flagErr = fmt.Errorf("%s (flag -%s): %w", l.path, l.path, err)
				}
			}
		}
	})
	if flagErr != nil {
		return flagErr
	}
	if err := validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	return nil
}

// LoadFile decodes one YAML file strictly into dst (a pointer to a struct)
// without the environment and flag layers, then checks it with validate.
func LoadFile(path string, dst any, validate func() error) error {
	root := reflect.ValueOf(dst)
	if root.Kind() != reflect.Pointer || root.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config.LoadFile needs a pointer to a struct, got %T", dst)
	}
	if err := loadFile(path, root.Elem()); err != nil {
		return err
	}
	if err := validate(); err != nil {
		return fmt.Errorf("invalid configuration in %s: %w", path, err)
	}
	return nil
}

func envName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(path))
}

type leaf struct {
	path  string
	help  string
	value reflect.Value
}

// collectLeaves lists the settings reachable by name: scalars and string
// lists inside nested structs. Maps and slices of structs are file-only.
func collectLeaves(prefix string, v reflect.Value) []leaf {
	var out []leaf
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if isInline(f) {
			out = append(out, collectLeaves(prefix, v.Field(i))...)
			continue
		}
		name := yamlName(f)
		if name == "" {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		fv := v.Field(i)
		switch {
		case isScalar(f.Type) || f.Type == reflect.TypeFor[[]string]():
			out = append(out, leaf{path: path, help: f.Tag.Get("help"), value: fv})
		case f.Type.Kind() == reflect.Struct:
			out = append(out, collectLeaves(path, fv)...)
		}
	}
	return out
}

// isInline reports a struct field tagged `yaml:",inline"`, whose settings
// sit at the level of the struct that holds it.
func isInline(f reflect.StructField) bool {
	_, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return opts == "inline" && f.Type.Kind() == reflect.Struct
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

var durationType = reflect.TypeFor[time.Duration]()

func isScalar(t reflect.Type) bool {
	if t == durationType {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint32, reflect.Uint64, reflect.Float64:
		return true
	}
	return false
}

// flagValue records a flag's raw text; it is applied after the file and the
// environment so flags win. Set checks the text parses, so a bad flag fails
// at parse time with the flag's name.
type flagValue struct {
	leaf leaf
	raw  string
}

func (f *flagValue) String() string {
	if f == nil || !f.leaf.value.IsValid() {
		return ""
	}
	return formatLeaf(f.leaf.value)
}

func (f *flagValue) Set(s string) error {
	scratch := reflect.New(f.leaf.value.Type()).Elem()
	if err := setLeaf(scratch, s); err != nil {
		return err
	}
	f.raw = s
	return nil
}

func (f *flagValue) IsBoolFlag() bool { return f.leaf.value.Kind() == reflect.Bool }

func formatLeaf(v reflect.Value) string {
	if v.Type() == reflect.TypeFor[[]string]() {
		return strings.Join(v.Interface().([]string), ",")
	}
	return fmt.Sprint(v.Interface())
}
