package catalog

import (
	"encoding/json"
	"fmt"
	"time"
)

// CommandType is the first byte of every encoded command.
type CommandType uint8

// Command types. Values are persisted in Raft logs: never reuse or renumber.
const (
	CmdRegister     CommandType = 1
	CmdDeregister   CommandType = 2
	CmdSetHealth    CommandType = 3
	CmdApplyConfig  CommandType = 4
	CmdDeleteConfig CommandType = 5
	CmdSetMember    CommandType = 6
)

// Command is something the leader proposes to Raft.
type Command interface {
	Type() CommandType
}

// Register creates or replaces an instance. Now is the leader's clock when
// it accepted the request; it stamps HealthChangedAt.
type Register struct {
	Instance Instance  `json:"instance"`
	Now      time.Time `json:"now"`
}

// Deregister removes an instance. With IfModifyIndex set, only the version
// of the instance the leader looked at is removed (the reaper uses it, so a
// re-registration racing with it wins).
type Deregister struct {
	Service       string `json:"service"`
	ID            string `json:"id"`
	IfModifyIndex uint64 `json:"if_modify_index,omitempty"`
}

// SetHealth records a health transition decided by the leader.
type SetHealth struct {
	Service       string    `json:"service"`
	ID            string    `json:"id"`
	Health        Health    `json:"health"`
	Output        string    `json:"output,omitempty"`
	At            time.Time `json:"at"`
	IfModifyIndex uint64    `json:"if_modify_index,omitempty"`
}

// ApplyConfig writes a config document, validated before it was proposed.
// With ExpectedVersion set the write is a compare-and-set: 0 means the
// document must not exist.
type ApplyConfig struct {
	Kind            string  `json:"kind"`
	Name            string  `json:"name"`
	Body            []byte  `json:"body"`
	ExpectedVersion *uint64 `json:"expected_version,omitempty"`
}

// DeleteConfig removes a config document, compare-and-set like ApplyConfig.
type DeleteConfig struct {
	Kind            string  `json:"kind"`
	Name            string  `json:"name"`
	ExpectedVersion *uint64 `json:"expected_version,omitempty"`
}

// SetMember records (or with Remove, forgets) a node's API address.
type SetMember struct {
	Member Member `json:"member"`
	Remove bool   `json:"remove,omitempty"`
}

// Type implements Command.
func (Register) Type() CommandType { return CmdRegister }

// Type implements Command.
func (Deregister) Type() CommandType { return CmdDeregister }

// Type implements Command.
func (SetHealth) Type() CommandType { return CmdSetHealth }

// Type implements Command.
func (ApplyConfig) Type() CommandType { return CmdApplyConfig }

// Type implements Command.
func (DeleteConfig) Type() CommandType { return CmdDeleteConfig }

// Type implements Command.
func (SetMember) Type() CommandType { return CmdSetMember }

var (
	_ Command = Register{}
	_ Command = Deregister{}
	_ Command = SetHealth{}
	_ Command = ApplyConfig{}
	_ Command = DeleteConfig{}
	_ Command = SetMember{}
)

// Encode serializes a command for the Raft log: its type byte, then JSON.
func Encode(c Command) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode command %d: %w", c.Type(), err)
	}
	return append([]byte{byte(c.Type())}, body...), nil
}

// handler decodes one command type and applies it at index.
type handler func(s *Store, index uint64, body []byte) Result

// decodeInto returns a handler that decodes the JSON body into a C and
// calls apply with it.
func decodeInto[C Command](apply func(s *Store, index uint64, c C) Result) handler {
	return func(s *Store, index uint64, body []byte) Result {
		var c C
		if err := json.Unmarshal(body, &c); err != nil {
			return Result{Index: index, Err: fmt.Errorf("decode command %d: %w", c.Type(), err)}
		}
		return apply(s, index, c)
	}
}

// commands is the dispatch table: the one place a command type is bound to
// the code that applies it.
var commands = map[CommandType]handler{
	CmdRegister:     decodeInto((*Store).applyRegister),
	CmdDeregister:   decodeInto((*Store).applyDeregister),
	CmdSetHealth:    decodeInto((*Store).applySetHealth),
	CmdApplyConfig:  decodeInto((*Store).applyConfig),
	CmdDeleteConfig: decodeInto((*Store).applyDeleteConfig),
	CmdSetMember:    decodeInto((*Store).applySetMember),
}
