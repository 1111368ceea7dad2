// Package catalog is the registry's replicated state machine: service
// instances with their health, operator config documents and the cluster's
// member directory, changed only by commands that Raft has committed.
//
// Everything here is pure and deterministic: no sockets, no clocks (times
// arrive inside commands, stamped by the leader) and no randomness, so every
// node that applies the same log holds the same catalog. Commands are
// dispatched through one table keyed by their type byte; an unknown type is
// refused without touching the state.
package catalog

import (
	"slices"
	"time"
)

// Health is an instance's status as every node agrees on it. The values
// match registry.v1.HealthStatus.
type Health uint8

// Health values.
const (
	HealthUnspecified Health = 0
	HealthPassing     Health = 1
	HealthWarning     Health = 2
	HealthCritical    Health = 3
)

func (h Health) String() string {
	switch h {
	case HealthPassing:
		return "passing"
	case HealthWarning:
		return "warning"
	case HealthCritical:
		return "critical"
	default:
		return "unspecified"
	}
}

// CheckType selects how an instance's health is decided. The values match
// registry.v1.CheckType.
type CheckType uint8

// Check types.
const (
	CheckNone CheckType = 0
	CheckTTL  CheckType = 1
	CheckHTTP CheckType = 2
	CheckTCP  CheckType = 3
	CheckGRPC CheckType = 4
)

// Active reports whether the leader probes instances with this check.
func (t CheckType) Active() bool { return t == CheckHTTP || t == CheckTCP || t == CheckGRPC }

func (t CheckType) String() string {
	switch t {
	case CheckTTL:
		return "ttl"
	case CheckHTTP:
		return "http"
	case CheckTCP:
		return "tcp"
	case CheckGRPC:
		return "grpc"
	default:
		return "none"
	}
}

// Check configures an instance's health check.
type Check struct {
	Type                    CheckType     `json:"type,omitempty"`
	TTL                     time.Duration `json:"ttl,omitempty"`
	Interval                time.Duration `json:"interval,omitempty"`
	Timeout                 time.Duration `json:"timeout,omitempty"`
	FailuresBeforeCritical  uint32        `json:"failures_before_critical,omitempty"`
	SuccessesBeforePassing  uint32        `json:"successes_before_passing,omitempty"`
	HTTPPath                string        `json:"http_path,omitempty"`
	GRPCService             string        `json:"grpc_service,omitempty"`
	DeregisterCriticalAfter time.Duration `json:"deregister_critical_after,omitempty"`
}

// Instance is one registered endpoint of a service. Stored instances are
// never modified in place: a change stores a new value, so readers may keep
// the pointers they were given.
type Instance struct {
	Service         string            `json:"service"`
	ID              string            `json:"id"`
	Address         string            `json:"address"`
	Port            uint32            `json:"port"`
	Tags            []string          `json:"tags,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	Region          string            `json:"region,omitempty"`
	Zone            string            `json:"zone,omitempty"`
	Health          Health            `json:"health"`
	HealthOutput    string            `json:"health_output,omitempty"`
	HealthChangedAt time.Time         `json:"health_changed_at"`
	Check           Check             `json:"check"`
	CreateIndex     uint64            `json:"create_index"`
	ModifyIndex     uint64            `json:"modify_index"`
}

// Key identifies an instance.
type Key struct{ Service, ID string }

// Key returns the instance's key.
func (in *Instance) Key() Key { return Key{in.Service, in.ID} }

func (in *Instance) clone() *Instance {
	c := *in
	c.Tags = slices.Clone(in.Tags)
	if in.Metadata != nil {
		c.Metadata = make(map[string]string, len(in.Metadata))
		for k, v := range in.Metadata {
			c.Metadata[k] = v
		}
	}
	return &c
}

// ConfigDoc is one operator config document. Version is the Raft index of
// its last write, so it is unique over the document's whole history and a
// compare-and-set on it cannot be fooled by delete-and-recreate.
type ConfigDoc struct {
	Kind        string `json:"kind"`
	Name        string `json:"name"`
	Version     uint64 `json:"version"`
	Body        []byte `json:"body"`
	CreateIndex uint64 `json:"create_index"`
}

// Member maps a Raft server ID to the gRPC address its API listens on, so
// followers know where to forward writes.
type Member struct {
	ID         string `json:"id"`
	APIAddress string `json:"api_address"`
}

// EventType says what an Event changed.
type EventType uint8

// Event types; the values match registry.v1.Event.Type.
const (
	EventInstanceUpsert EventType = 1
	EventInstanceDelete EventType = 2
	EventConfigUpsert   EventType = 3
	EventConfigDelete   EventType = 4
)

// Event is one change to the catalog, at the Raft index that made it. For
// deletes it carries the last state of what was removed.
type Event struct {
	Type     EventType
	Index    uint64
	Instance *Instance
	Config   *ConfigDoc
}
