package contract

import "strings"

// exposedNames returns the metric names in a Prometheus text exposition:
// family names from # TYPE lines (a histogram's also with _bucket, _sum and
// _count, a summary's with _sum and _count) and the name of every sample.
func exposedNames(text string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			f := strings.Fields(line)
			if len(f) >= 4 && f[1] == "TYPE" {
				names[f[2]] = true
				switch f[3] {
				case "histogram", "gaugehistogram":
					names[f[2]+"_bucket"], names[f[2]+"_sum"], names[f[2]+"_count"] = true, true, true
				case "summary":
					names[f[2]+"_sum"], names[f[2]+"_count"] = true, true
				}
			}
			continue
		}
		if i := strings.IndexAny(line, "{ \t"); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}
