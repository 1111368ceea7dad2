package configcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/switchyard-mesh/switchyard/services/meshctl/internal/cliflags"
)

// proxyEntry mirrors the control plane's GET /debug/xds/proxies entries.
type proxyEntry struct {
	ID        string            `json:"id"`
	Kind      string            `json:"kind"`
	Service   string            `json:"service"`
	Connected bool              `json:"connected"`
	Delta     bool              `json:"delta"`
	Acked     map[string]string `json:"acked"`
	Current   map[string]string `json:"current"`
	NACKs     int               `json:"nacks"`
	LastNACK  *struct {
		Type    string    `json:"type"`
		Version string    `json:"version"`
		Error   string    `json:"error"`
		At      time.Time `json:"at"`
	} `json:"last_nack"`
}

func getJSON(ctx context.Context, u string, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("control plane admin: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, dst)
}

// Status prints every proxy the control plane knows: whether it is
// connected, for each type its last ACKed version (✓ when it is the
// current one), and its NACKs with the last error.
func Status(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlags("status")
	if err := cliflags.Parse(fs, args); err != nil {
		return err
	}
	var body struct {
		Proxies []proxyEntry `json:"proxies"`
	}
	if err := getJSON(ctx, "http://"+c.controlplane+"/debug/xds/proxies", &body); err != nil {
		return err
	}
	writeStatus(stdout, body.Proxies)
	return nil
}

func writeStatus(w io.Writer, proxies []proxyEntry) {
	sort.Slice(proxies, func(i, j int) bool { return proxies[i].ID < proxies[j].ID })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROXY\tKIND\tSERVICE\tCONNECTED\tLDS\tRDS\tCDS\tEDS\tNACKS")
	var nacks []string
	for _, p := range proxies {
		row := []string{p.ID, p.Kind, dash(p.Service), fmt.Sprint(p.Connected)}
		for _, typ := range []string{"lds", "rds", "cds", "eds"} {
			row = append(row, versionCell(p.Acked[typ], p.Current[typ]))
		}
		row = append(row, fmt.Sprint(p.NACKs))
		for i, cell := range row {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, cell)
		}
		fmt.Fprintln(tw)
		if n := p.LastNACK; n != nil {
			nacks = append(nacks, fmt.Sprintf("%s: last NACK %s version %s at %s: %s", p.ID, n.Type, n.Version, n.At.Format(time.RFC3339), n.Error))
		}
	}
	tw.Flush()
	for _, n := range nacks {
		fmt.Fprintln(w, n)
	}
}

// versionCell shows "✓ v" when the proxy ACKed the current version, "v→cur"
// when it is behind, "-" when the type is not in use.
func versionCell(acked, current string) string {
	switch {
	case acked == "" && current == "":
		return "-"
	case acked == current:
		return "✓ " + short(acked)
	case acked == "":
		return "pending→" + short(current)
	}
	return short(acked) + "→" + short(current)
}

func short(v string) string {
	if len(v) > 8 {
		return v[:8]
	}
	return v
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ProxyConfig prints the resources the control plane holds for a proxy
// (what it sends), optionally one type only.
func ProxyConfig(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlags("proxy-config")
	typ := fs.String("type", "", "only this type: lds, rds, cds or eds")
	if err := cliflags.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: meshctl proxy-config [-type lds|rds|cds|eds] PROXY")
	}
	var body struct {
		Proxy     string                       `json:"proxy"`
		Versions  map[string]string            `json:"versions"`
		Resources map[string][]json.RawMessage `json:"resources"`
	}
	if err := getJSON(ctx, "http://"+c.controlplane+"/debug/xds/config?proxy="+url.QueryEscape(fs.Arg(0)), &body); err != nil {
		return err
	}
	if *typ != "" {
		rs, ok := body.Resources[*typ]
		if !ok {
			return fmt.Errorf("-type %q: want lds, rds, cds or eds", *typ)
		}
		body.Resources = map[string][]json.RawMessage{*typ: rs}
		body.Versions = map[string]string{*typ: body.Versions[*typ]}
	}
	out, err := json.MarshalIndent(body, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}
