// Package cliflags parses a meshctl subcommand's flags wherever they stand
// among its arguments, so `meshctl proxy-config PROXY -type cds` works as
// well as `meshctl proxy-config -type cds PROXY` (the standard flag package
// stops at the first positional argument).
package cliflags

import "flag"

// Parse parses args into fs, flags and positional arguments in any order;
// afterwards fs.Args() holds the positional ones in their order. An
// explicit "--" ends flag parsing as usual.
func Parse(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, positional...))
}
