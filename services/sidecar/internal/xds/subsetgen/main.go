// Command subsetgen writes the .proto files of the Envoy v3 subset the
// sidecar decodes xDS resources into (proto/switchyard/xdssubset): the
// message types and fields in package supported's tables, with Envoy's
// names, field numbers, types, oneofs and enums, under the package prefix
// switchyard.xdssubset. A field the sidecar does not implement is then not
// in its message type at all, so a resource that sets one decodes with
// unknown fields — the sidecar's NACK condition — and the process never
// builds descriptors and coders for the hundreds of Envoy message types it
// does not read. The ADS and RLS messages are in the subset too, so the
// sidecar links none of Envoy's generated code; Envoy's names of the
// fields left out go to a table of their own (omitted.go), to name them in
// NACKs. Run it with `make proto` after changing the tables.
package main

import (
	"flag"
	"fmt"
	"log"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	// The Envoy packages whose message types the tables name.
	_ "github.com/switchyard-mesh/switchyard/services/sidecar/internal/xds/envoyapi"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xds/supported"
)

// goImportBase is the Go import path of the repository's proto/ directory.
const goImportBase = "github.com/switchyard-mesh/switchyard/proto/"

const prefix = supported.Prefix

func main() {
	out := flag.String("out", "", "the proto/ directory of the repository")
	flag.Parse()
	if *out == "" {
		log.Fatal("subsetgen: -out (the repository's proto/ directory) is required")
	}
	files, err := build()
	if err != nil {
		log.Fatalf("subsetgen: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(*out, "switchyard", "xdssubset")); err != nil {
		log.Fatalf("subsetgen: %v", err)
	}
	for path, text := range files {
		p := filepath.Join(*out, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			log.Fatalf("subsetgen: %v", err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			log.Fatalf("subsetgen: %v", err)
		}
	}
}

// subset is what is kept: message types (with the fields of each) and enum
// types, by Envoy full name.
type subset struct {
	fields map[protoreflect.FullName]map[protoreflect.Name]bool
	enums  map[protoreflect.FullName]bool
}

func (s *subset) keptMessage(name protoreflect.FullName) bool { return s.fields[name] != nil }

// build resolves the tables against Envoy's descriptors and returns the
// text of each file by path.
func build() (map[string]string, error) {
	table, err := supported.All()
	if err != nil {
		return nil, err
	}
	s := &subset{fields: map[protoreflect.FullName]map[protoreflect.Name]bool{}, enums: map[protoreflect.FullName]bool{}}
	byPackage := map[protoreflect.FullName][]protoreflect.Descriptor{}
	keep := func(d protoreflect.Descriptor) {
		// Nested types need their parents, as namespaces at least.
		for p := d; ; p = p.Parent() {
			switch p := p.(type) {
			case protoreflect.MessageDescriptor:
				if !s.keptMessage(p.FullName()) {
					s.fields[p.FullName()] = map[protoreflect.Name]bool{}
				}
				continue
			case protoreflect.EnumDescriptor:
				s.enums[p.FullName()] = true
				continue
			}
			break
		}
	}
	for _, name := range slices.Sorted(maps.Keys(table)) {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		md, ok := d.(protoreflect.MessageDescriptor)
		if !ok {
			return nil, fmt.Errorf("%s is not a message type", name)
		}
		keep(md)
		for _, f := range table[name] {
			fd := md.Fields().ByName(protoreflect.Name(f))
			if fd == nil {
				return nil, fmt.Errorf("%s has no field %s", name, f)
			}
			s.fields[name][fd.Name()] = true
			switch {
			case fd.IsMap():
				keep(fd.Message())
				for _, kv := range []protoreflect.FieldDescriptor{fd.MapKey(), fd.MapValue()} {
					s.fields[fd.Message().FullName()][kv.Name()] = true
					if err := checkType(table, kv, name); err != nil {
						return nil, err
					}
				}
			default:
				if err := checkType(table, fd, name); err != nil {
					return nil, err
				}
				if fd.Enum() != nil {
					keep(fd.Enum())
				}
			}
		}
	}
	for name := range s.fields {
		d, _ := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if d.Parent() == d.ParentFile() {
			byPackage[d.ParentFile().Package()] = append(byPackage[d.ParentFile().Package()], d)
		}
	}
	for name := range s.enums {
		d, _ := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if d.Parent() == d.ParentFile() {
			byPackage[d.ParentFile().Package()] = append(byPackage[d.ParentFile().Package()], d)
		}
	}
	files := map[string]string{}
	for pkg, decls := range byPackage {
		path, text := s.file(pkg, decls)
		files[path] = text
	}
	files[filepath.Join(strings.ReplaceAll(prefix, ".", "/"), "omitted.go")] = s.omitted()
	return files, nil
}

// omitted writes the names Envoy gives the fields the subset leaves out,
// one line per message type: "<Envoy type> <number>=<name> …". A string
// constant, so the sidecar pays nothing for it until it names a field in
// a NACK.
func (s *subset) omitted() string {
	var b strings.Builder
	b.WriteString("// Code generated by subsetgen (services/sidecar/internal/xds/subsetgen). DO NOT EDIT.\n\n")
	b.WriteString("// Package xdssubset holds the names of the Envoy fields that the sidecar's\n")
	b.WriteString("// subset of the Envoy API (the packages below this one) leaves out, so\n")
	b.WriteString("// that a NACK names the field a control plane set.\n")
	b.WriteString("package xdssubset\n\n")
	b.WriteString("// OmittedFields has one line per message type of the subset, each\n")
	b.WriteString("// preceded by a newline: \"<Envoy type> <number>=<name> …\", the fields of\n")
	b.WriteString("// Envoy's type that the subset's does not have.\n")
	b.WriteString("const OmittedFields = \"\" +\n")
	names := slices.Sorted(maps.Keys(s.fields))
	for i, name := range names {
		d, _ := protoregistry.GlobalFiles.FindDescriptorByName(name)
		md := d.(protoreflect.MessageDescriptor)
		line := "\n" + string(name)
		for j := 0; j < md.Fields().Len(); j++ {
			if fd := md.Fields().Get(j); !s.fields[name][fd.Name()] {
				line += fmt.Sprintf(" %d=%s", fd.Number(), fd.Name())
			}
		}
		sep := " +"
		if i == len(names)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "\t%q%s\n", line, sep)
	}
	return b.String()
}

// checkType refuses a field whose message type the tables do not list.
func checkType(table map[protoreflect.FullName][]string, fd protoreflect.FieldDescriptor, in protoreflect.FullName) error {
	m := fd.Message()
	if m == nil || fd.IsMap() || m.FullName() == "google.protobuf.Any" || supported.ValueTypes[m.FullName()] {
		return nil
	}
	if _, ok := table[m.FullName()]; !ok {
		return fmt.Errorf("%s.%s has type %s, which the tables do not list", in, fd.Name(), m.FullName())
	}
	return nil
}

// file writes one package's declarations, in Envoy's order.
func (s *subset) file(pkg protoreflect.FullName, decls []protoreflect.Descriptor) (string, string) {
	// A total order, so the output does not change from run to run (a
	// message and an enum of one file can share an index): by file, enums
	// before messages, then Envoy's order.
	isMessage := func(d protoreflect.Descriptor) int {
		if _, ok := d.(protoreflect.MessageDescriptor); ok {
			return 1
		}
		return 0
	}
	slices.SortFunc(decls, func(a, b protoreflect.Descriptor) int {
		if c := strings.Compare(a.ParentFile().Path(), b.ParentFile().Path()); c != 0 {
			return c
		}
		if c := isMessage(a) - isMessage(b); c != 0 {
			return c
		}
		return a.Index() - b.Index()
	})
	dir := strings.ReplaceAll(prefix+string(pkg), ".", "/")
	path := dir + "/subset.proto"
	w := &writer{s: s, pkg: pkg, imports: map[string]bool{}}
	for _, d := range decls {
		switch d := d.(type) {
		case protoreflect.MessageDescriptor:
			w.message(d, "")
		case protoreflect.EnumDescriptor:
			w.enum(d, "")
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "// Code generated by subsetgen (services/sidecar/internal/xds/subsetgen). DO NOT EDIT.\n")
	fmt.Fprintf(&b, "//\n// The part of %s (Envoy's API) that the Switchyard sidecar uses:\n", pkg)
	fmt.Fprintf(&b, "// same message names, field names and numbers; fields it does not\n// implement are left out, so in a resource they decode as unknown\n// fields (NACK).\n\n")
	fmt.Fprintf(&b, "syntax = \"proto3\";\n\npackage %s%s;\n\n", prefix, pkg)
	for _, imp := range slices.Sorted(maps.Keys(w.imports)) {
		fmt.Fprintf(&b, "import %q;\n", imp)
	}
	if len(w.imports) > 0 {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "option go_package = %q;\n", goImportBase+dir+";"+goName(pkg))
	b.WriteString(w.b.String())
	return path, b.String()
}

// goName is the Go package name: the element before the version, without
// underscores, plus the version (clusterv3, httpconnectionmanagerv3).
func goName(pkg protoreflect.FullName) string {
	parts := strings.Split(string(pkg), ".")
	return strings.ReplaceAll(parts[len(parts)-2], "_", "") + parts[len(parts)-1]
}

type writer struct {
	s       *subset
	pkg     protoreflect.FullName
	imports map[string]bool
	b       strings.Builder
}

func (w *writer) message(md protoreflect.MessageDescriptor, indent string) {
	fmt.Fprintf(&w.b, "\n%smessage %s {\n", indent, md.Name())
	in := indent + "  "
	for i := 0; i < md.Enums().Len(); i++ {
		if e := md.Enums().Get(i); w.s.enums[e.FullName()] {
			w.enum(e, in)
		}
	}
	for i := 0; i < md.Messages().Len(); i++ {
		if m := md.Messages().Get(i); w.s.keptMessage(m.FullName()) && !m.IsMapEntry() {
			w.message(m, in)
		}
	}
	kept := w.s.fields[md.FullName()]
	// Fields outside oneofs first, then each oneof with its kept fields.
	var oneofs []protoreflect.OneofDescriptor
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		if !kept[fd.Name()] {
			continue
		}
		if o := fd.ContainingOneof(); o != nil && !o.IsSynthetic() {
			if !slices.Contains(oneofs, o) {
				oneofs = append(oneofs, o)
			}
			continue
		}
		w.field(fd, in)
	}
	for _, o := range oneofs {
		fmt.Fprintf(&w.b, "%soneof %s {\n", in, o.Name())
		for i := 0; i < o.Fields().Len(); i++ {
			if fd := o.Fields().Get(i); kept[fd.Name()] {
				w.field(fd, in+"  ")
			}
		}
		fmt.Fprintf(&w.b, "%s}\n", in)
	}
	fmt.Fprintf(&w.b, "%s}\n", indent)
}

func (w *writer) field(fd protoreflect.FieldDescriptor, indent string) {
	label := ""
	switch {
	case fd.IsMap():
		fmt.Fprintf(&w.b, "%smap<%s, %s> %s = %d;\n", indent, w.typeName(fd.MapKey()), w.typeName(fd.MapValue()), fd.Name(), fd.Number())
		return
	case fd.IsList():
		label = "repeated "
	case fd.HasOptionalKeyword():
		label = "optional "
	}
	fmt.Fprintf(&w.b, "%s%s%s %s = %d;\n", indent, label, w.typeName(fd), fd.Name(), fd.Number())
}

func (w *writer) typeName(fd protoreflect.FieldDescriptor) string {
	var d protoreflect.Descriptor
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		d = fd.Message()
	case protoreflect.EnumKind:
		d = fd.Enum()
	default:
		return fd.Kind().String()
	}
	file := d.ParentFile()
	if strings.HasPrefix(string(d.FullName()), "google.protobuf.") {
		w.imports[file.Path()] = true
		return "." + string(d.FullName())
	}
	if file.Package() != w.pkg {
		w.imports[strings.ReplaceAll(prefix+string(file.Package()), ".", "/")+"/subset.proto"] = true
	}
	return "." + prefix + string(d.FullName())
}

func (w *writer) enum(ed protoreflect.EnumDescriptor, indent string) {
	fmt.Fprintf(&w.b, "\n%senum %s {\n", indent, ed.Name())
	seen := map[protoreflect.EnumNumber]bool{}
	alias := false
	for i := 0; i < ed.Values().Len(); i++ {
		n := ed.Values().Get(i).Number()
		alias = alias || seen[n]
		seen[n] = true
	}
	if alias {
		fmt.Fprintf(&w.b, "%s  option allow_alias = true;\n", indent)
	}
	for i := 0; i < ed.Values().Len(); i++ {
		v := ed.Values().Get(i)
		fmt.Fprintf(&w.b, "%s  %s = %d;\n", indent, v.Name(), v.Number())
	}
	fmt.Fprintf(&w.b, "%s}\n", indent)
}
