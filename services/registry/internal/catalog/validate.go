package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"
)

// Limits on what one instance may carry. They keep the replicated state and
// every watcher's traffic bounded.
const (
	MaxIDLen           = 128
	MaxTags            = 32
	MaxTagLen          = 64
	MaxMetadataKeys    = 64
	MaxMetadataKeyLen  = 128
	MaxMetadataValLen  = 512
	MaxMetadataBytes   = 4096
	MaxHealthOutputLen = 1024
	MaxConfigBodyBytes = 256 << 10
	MaxHTTPPathLen     = 256

	DefaultFailuresBeforeCritical = 3
	DefaultSuccessesBeforePassing = 1
	DefaultCheckInterval          = 10 * time.Second
	DefaultCheckTimeout           = 2 * time.Second
	MinCheckInterval              = 100 * time.Millisecond
	MinTTL                        = 100 * time.Millisecond
	MaxTTL                        = 24 * time.Hour
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound: the instance or config document does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a compare-and-set condition did not hold.
	ErrConflict = errors.New("version conflict")
	// ErrUnknownCommand: the command type byte is not in the table.
	ErrUnknownCommand = errors.New("unknown command type")
)

// FieldError says which input field is wrong and why.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

var (
	labelRE    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	idRE       = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._:-]*[A-Za-z0-9])?$`)
	hostRE     = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$`)
	metaKeyRE  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$`)
	configName = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)
	kindRE     = regexp.MustCompile(`^[A-Z][A-Za-z0-9]{0,62}$`)
)

// ValidateServiceName checks a service name: a lowercase DNS label.
func ValidateServiceName(field, name string) error {
	if name == "" {
		return fieldErr(field, "is empty")
	}
	if !labelRE.MatchString(name) {
		return fieldErr(field, "%q is not a lowercase DNS label (a-z, 0-9, '-', at most 63 characters)", name)
	}
	return nil
}

// ValidateInstanceID checks an instance ID.
func ValidateInstanceID(field, id string) error {
	if id == "" {
		return fieldErr(field, "is empty")
	}
	if len(id) > MaxIDLen {
		return fieldErr(field, "is %d characters, the limit is %d", len(id), MaxIDLen)
	}
	if !idRE.MatchString(id) {
		return fieldErr(field, "%q may hold only letters, digits, '.', '_', ':' and '-'", id)
	}
	return nil
}

// ValidateKey checks a service name and instance ID pair.
func ValidateKey(k Key) error {
	return errors.Join(ValidateServiceName("service", k.Service), ValidateInstanceID("id", k.ID))
}

// NormalizeInstance validates an instance submitted for registration and
// returns it with defaults filled in (check thresholds, interval, timeout,
// sorted unique tags). Fields the registry owns (indexes, health time) are
// cleared. Every problem is reported, each naming its field.
func NormalizeInstance(in Instance) (Instance, error) {
	var errs []error
	errs = append(errs, ValidateServiceName("instance.service", in.Service))
	errs = append(errs, ValidateInstanceID("instance.id", in.ID))
	errs = append(errs, validateAddress("instance.address", in.Address))
	if in.Port == 0 || in.Port > 65535 {
		errs = append(errs, fieldErr("instance.port", "%d is not a port (1-65535)", in.Port))
	}
	if in.Region != "" && !labelRE.MatchString(in.Region) {
		errs = append(errs, fieldErr("instance.locality.region", "%q is not a lowercase DNS label", in.Region))
	}
	if in.Zone != "" && !labelRE.MatchString(in.Zone) {
		errs = append(errs, fieldErr("instance.locality.zone", "%q is not a lowercase DNS label", in.Zone))
	}
	errs = append(errs, validateTags(in.Tags), validateMetadata(in.Metadata))
	if in.Health > HealthCritical {
		errs = append(errs, fieldErr("instance.health", "unknown health %d", in.Health))
	}
	if len(in.HealthOutput) > MaxHealthOutputLen {
		errs = append(errs, fieldErr("instance.health_output", "is %d bytes, the limit is %d", len(in.HealthOutput), MaxHealthOutputLen))
	}
	check, err := normalizeCheck(in.Check)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return Instance{}, err
	}
	out := in
	out.Check = check
	if len(in.Tags) > 0 {
		out.Tags = slices.Clone(in.Tags)
		slices.Sort(out.Tags)
		out.Tags = slices.Compact(out.Tags)
	}
	if len(in.Metadata) == 0 {
		out.Metadata = nil
	}
	out.CreateIndex, out.ModifyIndex = 0, 0
	out.HealthChangedAt = time.Time{}
	return out, nil
}

func validateAddress(field, addr string) error {
	if addr == "" {
		return fieldErr(field, "is empty")
	}
	if ip, err := netip.ParseAddr(addr); err == nil {
		if ip.IsUnspecified() || ip.Zone() != "" {
			return fieldErr(field, "%q is not a routable address", addr)
		}
		return nil
	}
	if len(addr) > 253 || !hostRE.MatchString(addr) {
		return fieldErr(field, "%q is neither an IP address nor a DNS name", addr)
	}
	return nil
}

func validateTags(tags []string) error {
	if len(tags) > MaxTags {
		return fieldErr("instance.tags", "has %d tags, the limit is %d", len(tags), MaxTags)
	}
	for i, t := range tags {
		field := fmt.Sprintf("instance.tags[%d]", i)
		switch {
		case t == "":
			return fieldErr(field, "is empty")
		case len(t) > MaxTagLen:
			return fieldErr(field, "is %d bytes, the limit is %d", len(t), MaxTagLen)
		case !printable(t):
			return fieldErr(field, "%q holds spaces or control characters", t)
		}
	}
	return nil
}

func validateMetadata(md map[string]string) error {
	if len(md) > MaxMetadataKeys {
		return fieldErr("instance.metadata", "has %d keys, the limit is %d", len(md), MaxMetadataKeys)
	}
	total := 0
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := md[k]
		field := fmt.Sprintf("instance.metadata[%q]", k)
		switch {
		case k == "":
			return fieldErr("instance.metadata", "has an empty key")
		case len(k) > MaxMetadataKeyLen:
			return fieldErr(field, "key is %d bytes, the limit is %d", len(k), MaxMetadataKeyLen)
		case !metaKeyRE.MatchString(k):
			return fieldErr(field, "key may hold only letters, digits, '.', '_', '/' and '-'")
		case len(v) > MaxMetadataValLen:
			return fieldErr(field, "value is %d bytes, the limit is %d", len(v), MaxMetadataValLen)
		case !utf8.ValidString(v):
			return fieldErr(field, "value is not UTF-8")
		}
		total += len(k) + len(v)
	}
	if total > MaxMetadataBytes {
		return fieldErr("instance.metadata", "is %d bytes in all, the limit is %d", total, MaxMetadataBytes)
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

func normalizeCheck(c Check) (Check, error) {
	const f = "instance.check."
	switch c.Type {
	case CheckNone:
		return Check{DeregisterCriticalAfter: c.DeregisterCriticalAfter}, nonNegative(f+"deregister_critical_after", c.DeregisterCriticalAfter)
	case CheckTTL:
		if c.TTL < MinTTL || c.TTL > MaxTTL {
			return c, fieldErr(f+"ttl", "%s is outside %s-%s", c.TTL, MinTTL, MaxTTL)
		}
		if err := nonNegative(f+"deregister_critical_after", c.DeregisterCriticalAfter); err != nil {
			return c, err
		}
		return Check{Type: CheckTTL, TTL: c.TTL, DeregisterCriticalAfter: c.DeregisterCriticalAfter}, nil
	case CheckHTTP, CheckTCP, CheckGRPC:
	default:
		return c, fieldErr(f+"type", "unknown check type %d", c.Type)
	}
	out := c
	out.TTL = 0
	if out.Interval == 0 {
		out.Interval = DefaultCheckInterval
	}
	if out.Timeout == 0 {
		out.Timeout = min(DefaultCheckTimeout, out.Interval)
	}
	if out.FailuresBeforeCritical == 0 {
		out.FailuresBeforeCritical = DefaultFailuresBeforeCritical
	}
	if out.SuccessesBeforePassing == 0 {
		out.SuccessesBeforePassing = DefaultSuccessesBeforePassing
	}
	var errs []error
	if out.Interval < MinCheckInterval {
		errs = append(errs, fieldErr(f+"interval", "%s is below the minimum %s", out.Interval, MinCheckInterval))
	}
	if out.Timeout <= 0 || out.Timeout > out.Interval {
		errs = append(errs, fieldErr(f+"timeout", "%s must be positive and at most the interval %s", out.Timeout, out.Interval))
	}
	if out.FailuresBeforeCritical > 100 {
		errs = append(errs, fieldErr(f+"failures_before_critical", "%d is above 100", out.FailuresBeforeCritical))
	}
	if out.SuccessesBeforePassing > 100 {
		errs = append(errs, fieldErr(f+"successes_before_passing", "%d is above 100", out.SuccessesBeforePassing))
	}
	errs = append(errs, nonNegative(f+"deregister_critical_after", out.DeregisterCriticalAfter))
	if c.Type == CheckHTTP {
		if out.HTTPPath == "" {
			out.HTTPPath = "/"
		}
		if out.HTTPPath[0] != '/' || len(out.HTTPPath) > MaxHTTPPathLen || !printable(out.HTTPPath) {
			errs = append(errs, fieldErr(f+"http_path", "%q must start with '/', hold no spaces and be at most %d bytes", out.HTTPPath, MaxHTTPPathLen))
		}
	} else {
		out.HTTPPath = ""
	}
	if c.Type == CheckGRPC {
		if len(out.GRPCService) > 256 || (out.GRPCService != "" && !printable(out.GRPCService)) {
			errs = append(errs, fieldErr(f+"grpc_service", "must be at most 256 printable bytes"))
		}
	} else {
		out.GRPCService = ""
	}
	return out, errors.Join(errs...)
}

func nonNegative(field string, d time.Duration) error {
	if d < 0 {
		return fieldErr(field, "%s is negative", d)
	}
	return nil
}

// ValidateConfigKey checks a config document's kind and name.
func ValidateConfigKey(kind, name string) error {
	var errs []error
	if kind == "" {
		errs = append(errs, fieldErr("kind", "is empty"))
	} else if !kindRE.MatchString(kind) {
		errs = append(errs, fieldErr("kind", "%q is not a kind name (UpperCamelCase, at most 63 characters)", kind))
	}
	if name == "" {
		errs = append(errs, fieldErr("name", "is empty"))
	} else if !configName.MatchString(name) {
		errs = append(errs, fieldErr("name", "%q is not a lowercase DNS name (a-z, 0-9, '.', '-', at most 253 characters)", name))
	}
	return errors.Join(errs...)
}

// ValidateConfigBody checks what the catalog itself requires of a config
// body, before the kind-specific ConfigValidator: a JSON object within the
// size limit.
func ValidateConfigBody(body []byte) error {
	if len(body) > MaxConfigBodyBytes {
		return fieldErr("body", "is %d bytes, the limit is %d", len(body), MaxConfigBodyBytes)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return fieldErr("body", "is not a JSON object")
	}
	return nil
}

// ConfigValidator checks a config document's body for its kind. It refuses
// unknown kinds. The mesh's real validator lives in kit/meshconfig; the
// registry calls it before a document is proposed to Raft, so an invalid
// document changes nothing.
type ConfigValidator interface {
	Validate(kind, name string, body []byte) error
}

// SetValidator is a ConfigValidator that also checks a document against
// the documents already stored (e.g. a port two documents may not share).
// The leader runs it just before proposing, against its own state.
type SetValidator interface {
	ConfigValidator
	ValidateWith(kind, name string, body []byte, stored []*ConfigDoc) error
}
