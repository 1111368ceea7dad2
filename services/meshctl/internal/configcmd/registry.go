package configcmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/kit/meshconfig"
	"github.com/switchyard-mesh/switchyard/services/meshctl/internal/cliflags"
)

// Apply validates every document in the files, then stores each. Nothing is
// sent unless all documents are valid.
func Apply(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlags("apply")
	var files fileList
	fs.Var(&files, "f", "file of YAML documents (repeatable; - for stdin)")
	if err := cliflags.Parse(fs, args); err != nil {
		return err
	}
	docs, err := parseFiles(files)
	if err != nil {
		return err
	}
	reg, done, err := c.registryClient(ctx)
	if err != nil {
		return err
	}
	defer done()
	return applyDocs(ctx, reg, docs, stdout)
}

func parseFiles(files []string) ([]meshconfig.Document, error) {
	text, err := readFiles(files, os.Stdin)
	if err != nil {
		return nil, err
	}
	docs, err := meshconfig.Parse(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("invalid documents, nothing applied:\n%w", err)
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("no documents in %s", strings.Join(files, ", "))
	}
	return docs, nil
}

func applyDocs(ctx context.Context, reg registryv1.RegistryServiceClient, docs []meshconfig.Document, stdout io.Writer) error {
	for _, d := range docs {
		body, err := d.SpecJSON()
		if err != nil {
			return err
		}
		resp, err := reg.ApplyConfig(ctx, &registryv1.ApplyConfigRequest{Kind: d.Kind, Name: d.Name, Body: body})
		if err != nil {
			return fmt.Errorf("apply %s (documents before it were applied, those after were not): %w", d.Key(), err)
		}
		fmt.Fprintf(stdout, "%s configured (version %d)\n", d.Key(), resp.GetConfig().GetVersion())
	}
	return nil
}

// Get prints stored documents as YAML: all, all of a kind, or one.
func Get(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlags("get")
	if err := cliflags.Parse(fs, args); err != nil {
		return err
	}
	kind, name := fs.Arg(0), fs.Arg(1)
	reg, done, err := c.registryClient(ctx)
	if err != nil {
		return err
	}
	defer done()
	var stored []*registryv1.ConfigDocument
	if name != "" {
		resp, err := reg.GetConfig(ctx, &registryv1.GetConfigRequest{Kind: kind, Name: name})
		if err != nil {
			return fmt.Errorf("get %s/%s: %w", kind, name, err)
		}
		stored = []*registryv1.ConfigDocument{resp.GetConfig()}
	} else {
		resp, err := reg.ListConfig(ctx, &registryv1.ListConfigRequest{Kind: kind})
		if err != nil {
			return fmt.Errorf("list config: %w", err)
		}
		stored = resp.GetConfigs()
	}
	return render(stored, stdout)
}

// render writes stored documents as a YAML stream.
func render(stored []*registryv1.ConfigDocument, w io.Writer) error {
	for i, s := range stored {
		d, err := meshconfig.Decode(s.GetKind(), s.GetName(), s.GetBody())
		if err != nil {
			return fmt.Errorf("stored %s/%s: %w", s.GetKind(), s.GetName(), err)
		}
		y, err := d.YAML()
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(w, "---")
		}
		fmt.Fprintf(w, "# version %d\n%s", s.GetVersion(), y)
	}
	return nil
}

// Delete removes KIND NAME, or every document in -f files.
func Delete(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlags("delete")
	var files fileList
	fs.Var(&files, "f", "file of YAML documents to delete (repeatable)")
	if err := cliflags.Parse(fs, args); err != nil {
		return err
	}
	var keys [][2]string
	switch {
	case len(files) > 0:
		docs, err := parseFiles(files)
		if err != nil {
			return err
		}
		for _, d := range docs {
			keys = append(keys, [2]string{d.Kind, d.Name})
		}
	case fs.NArg() == 2:
		keys = [][2]string{{fs.Arg(0), fs.Arg(1)}}
	default:
		return fmt.Errorf("usage: meshctl delete KIND NAME | -f FILE")
	}
	reg, done, err := c.registryClient(ctx)
	if err != nil {
		return err
	}
	defer done()
	for _, k := range keys {
		if _, err := reg.DeleteConfig(ctx, &registryv1.DeleteConfigRequest{Kind: k[0], Name: k[1]}); err != nil {
			return fmt.Errorf("delete %s/%s: %w", k[0], k[1], err)
		}
		fmt.Fprintf(stdout, "%s/%s deleted\n", k[0], k[1])
	}
	return nil
}

// Diff shows, per document in the files, how it differs from what the
// registry stores. It returns an error (exit 1) when anything differs.
func Diff(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlags("diff")
	var files fileList
	fs.Var(&files, "f", "file of YAML documents (repeatable)")
	if err := cliflags.Parse(fs, args); err != nil {
		return err
	}
	docs, err := parseFiles(files)
	if err != nil {
		return err
	}
	reg, done, err := c.registryClient(ctx)
	if err != nil {
		return err
	}
	defer done()
	changed := 0
	for _, d := range docs {
		want, err := d.YAML()
		if err != nil {
			return err
		}
		var have []byte
		resp, err := reg.GetConfig(ctx, &registryv1.GetConfigRequest{Kind: d.Kind, Name: d.Name})
		switch {
		case isNotFound(err):
		case err != nil:
			return fmt.Errorf("get %s: %w", d.Key(), err)
		default:
			stored, err := meshconfig.Decode(d.Kind, d.Name, resp.GetConfig().GetBody())
			if err != nil {
				return fmt.Errorf("stored %s: %w", d.Key(), err)
			}
			if have, err = stored.YAML(); err != nil {
				return err
			}
		}
		if out := lineDiff(string(have), string(want)); out != "" {
			changed++
			fmt.Fprintf(stdout, "--- %s (stored)\n+++ %s (file)\n%s", d.Key(), d.Key(), out)
		}
	}
	if changed > 0 {
		return fmt.Errorf("%d of %d documents differ", changed, len(docs))
	}
	fmt.Fprintf(stdout, "%d documents match what is stored\n", len(docs))
	return nil
}
