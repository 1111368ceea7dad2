// Package jointoken authenticates a process's first SVID request. A join
// token is a shared secret configured in the CA that maps to exactly one
// SPIFFE ID, has an expiry and may be single-use, as SPIRE join tokens are.
//
// Tokens are held only as SHA-256 hashes; logs and errors name a token by
// Fingerprint, never by its value. Used single-use tokens are recorded in an
// append-only file so a restart does not make them usable again.
package jointoken

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Errors Redeem returns; callers branch on them with errors.Is.
var (
	ErrUnknown = errors.New("unknown join token")
	ErrExpired = errors.New("join token expired")
	ErrUsed    = errors.New("single-use join token already used")
)

// Token is one configured join token.
type Token struct {
	Value     string
	ID        spiffeid.ID
	Expires   time.Time // zero: never
	SingleUse bool
}

// Fingerprint names a token in logs: the first 12 hex digits of its SHA-256.
func Fingerprint(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:6])
}

type entry struct {
	id        spiffeid.ID
	expires   time.Time
	singleUse bool
}

// Store redeems join tokens. It is safe for concurrent use.
type Store struct {
	mu      sync.Mutex
	tokens  map[[sha256.Size]byte]entry
	used    map[[sha256.Size]byte]bool
	usedLog *os.File // nil: used tokens are remembered in memory only
}

// NewStore returns a store of tokens. usedPath, if not empty, is the file
// recording used single-use tokens (one hex SHA-256 per line); it is read now
// and appended to on every use.
func NewStore(tokens []Token, usedPath string) (*Store, error) {
	s := &Store{tokens: make(map[[sha256.Size]byte]entry, len(tokens)), used: map[[sha256.Size]byte]bool{}}
	for i, t := range tokens {
		if t.Value == "" {
			return nil, fmt.Errorf("tokens[%d]: empty token", i)
		}
		h := sha256.Sum256([]byte(t.Value))
		if _, dup := s.tokens[h]; dup {
			return nil, fmt.Errorf("tokens[%d]: duplicate token %s", i, Fingerprint(t.Value))
		}
		s.tokens[h] = entry{id: t.ID, expires: t.Expires, singleUse: t.SingleUse}
	}
	if usedPath == "" {
		return s, nil
	}
	if err := s.loadUsed(usedPath); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(usedPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open used-token log: %w", err)
	}
	s.usedLog = f
	return s, nil
}

func (s *Store) loadUsed(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open used-token log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		raw, err := hex.DecodeString(text)
		if err != nil || len(raw) != sha256.Size {
			return fmt.Errorf("used-token log %s line %d: not a hex SHA-256", path, line)
		}
		s.used[[sha256.Size]byte(raw)] = true
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read used-token log: %w", err)
	}
	return nil
}

// Redeem checks value at time now and returns the SPIFFE ID it grants. If
// check is not nil it runs with that ID before a single-use token is consumed,
// so a request refused for another reason (a bad CSR) does not burn the
// token. A single-use token is consumed, and persisted, only on success.
func (s *Store) Redeem(value string, now time.Time, check func(spiffeid.ID) error) (spiffeid.ID, error) {
	h := sha256.Sum256([]byte(value))
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.tokens[h]
	if !ok {
		return spiffeid.ID{}, fmt.Errorf("%w (%s)", ErrUnknown, Fingerprint(value))
	}
	if !e.expires.IsZero() && !now.Before(e.expires) {
		return spiffeid.ID{}, fmt.Errorf("%w at %s (%s)", ErrExpired, e.expires.UTC().Format(time.RFC3339), Fingerprint(value))
	}
	if e.singleUse && s.used[h] {
		return spiffeid.ID{}, fmt.Errorf("%w (%s)", ErrUsed, Fingerprint(value))
	}
	if check != nil {
		if err := check(e.id); err != nil {
			return spiffeid.ID{}, err
		}
	}
	if !e.singleUse {
		return e.id, nil
	}
	if s.usedLog != nil {
		if _, err := fmt.Fprintf(s.usedLog, "%x\n", h); err != nil {
			return spiffeid.ID{}, fmt.Errorf("record used token %s: %w", Fingerprint(value), err)
		}
		if err := s.usedLog.Sync(); err != nil {
			return spiffeid.ID{}, fmt.Errorf("record used token %s: %w", Fingerprint(value), err)
		}
	}
	s.used[h] = true
	return e.id, nil
}

// Close closes the used-token log.
func (s *Store) Close() error {
	if s.usedLog == nil {
		return nil
	}
	return s.usedLog.Close()
}
