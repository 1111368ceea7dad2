package ratelimit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	commonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"
)

// h2Load is a lean closed-loop load generator for the RLS gRPC method,
// written the way h2load or an Envoy RLS client works rather than the way
// grpc-go's client does: per connection one goroutine reads frames and,
// as each call completes, writes the next call of that slot into a buffer
// that is flushed once per batch of frames read. Requests are encoded
// once (HPACK literals that never touch the dynamic table, the gRPC
// message pre-marshalled); answers are checked from the first field of
// the response message (overall_code) and the grpc-status trailer. It
// costs a few µs of CPU per call instead of grpc-go's ≈ 20, so on a
// shared two-core box it leaves the cores to the service being measured.
type h2Load struct {
	addr   string
	conns  int
	slots  int // calls in flight per connection
	bodies [][]byte
	want   rlsv3.RateLimitResponse_Code
}

// h2LoadResult is one run's outcome.
type h2LoadResult struct {
	lat   []time.Duration
	wrong int
}

const rlsPath = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"

// h2Window is the flow-control window the generator advertises, as large as
// the service's so neither side waits on window updates.
const h2Window = 1 << 20

func newH2Load(addr string, conns, slots int, reqs []*rlsv3.RateLimitRequest, want rlsv3.RateLimitResponse_Code) (*h2Load, error) {
	l := &h2Load{addr: addr, conns: conns, slots: slots, want: want}
	for _, r := range reqs {
		msg, err := proto.Marshal(r)
		if err != nil {
			return nil, err
		}
		body := make([]byte, 5+len(msg))
		binary.BigEndian.PutUint32(body[1:5], uint32(len(msg)))
		copy(body[5:], msg)
		l.bodies = append(l.bodies, body)
	}
	return l, nil
}

// run keeps conns×slots calls in flight for d.
func (l *h2Load) run(d time.Duration) (h2LoadResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var res h2LoadResult
	errs := make(chan error, l.conns)
	for c := range l.conns {
		go func() {
			lat, wrong, err := l.runConn(ctx, c)
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.wrong += wrong
			mu.Unlock()
			errs <- err
		}()
	}
	var first error
	for range l.conns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return res, first
}

func (l *h2Load) runConn(ctx context.Context, index int) ([]time.Duration, int, error) {
	nc, err := net.Dial("tcp", l.addr)
	if err != nil {
		return nil, 0, err
	}
	defer nc.Close()
	// When ctx ends no new calls start and those in flight are waited
	// for, so the service sees no cancellations; the deadline only guards
	// against a service that stops answering.
	if deadline, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(deadline.Add(5 * time.Second))
	}

	bw := bufio.NewWriterSize(nc, 64<<10)
	br := bufio.NewReaderSize(nc, 64<<10)
	fr := http2.NewFramer(bw, br)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 20

	var head bytes.Buffer
	enc := hpack.NewEncoder(&head)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", rlsPath}, {":authority", l.addr},
		{"content-type", "application/grpc"}, {"te", "trailers"}} {
		// Never-indexed literals: the same bytes are valid for every call.
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1], Sensitive: true})
	}
	block := head.Bytes()

	if _, err := bw.WriteString(http2.ClientPreface); err != nil {
		return nil, 0, err
	}
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2Window},
		http2.Setting{ID: http2.SettingEnablePush, Val: 0}); err != nil {
		return nil, 0, err
	}
	if err := fr.WriteWindowUpdate(0, h2Window-65535); err != nil {
		return nil, 0, err
	}
	if err := bw.Flush(); err != nil {
		return nil, 0, err
	}

	type call struct {
		start time.Time
		slot  int
	}
	inflight := map[uint32]call{}
	nextID := uint32(1)
	next := index // spreads the connections over the descriptor values
	sendWindow := int64(65535)
	var received int64
	var lat []time.Duration
	wrong := 0
	status := map[uint32]int{} // stream → overall_code seen in its message, or -1

	send := func(slot int) {
		body := l.bodies[next%len(l.bodies)]
		next += l.conns
		id := nextID
		nextID += 2
		writeFrameHeader(bw, len(block), http2.FrameHeaders, http2.FlagHeadersEndHeaders, id)
		bw.Write(block)
		writeFrameHeader(bw, len(body), http2.FrameData, http2.FlagDataEndStream, id)
		bw.Write(body)
		sendWindow -= int64(len(body))
		inflight[id] = call{start: time.Now(), slot: slot}
		status[id] = -1
	}
	settled := false
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return lat, wrong, fmt.Errorf("read frame: %w", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				break
			}
			if err := fr.WriteSettingsAck(); err != nil {
				return lat, wrong, err
			}
			if !settled {
				settled = true
				for slot := range l.slots {
					send(slot)
				}
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				sendWindow += int64(f.Increment)
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				if err := fr.WritePing(true, f.Data); err != nil {
					return lat, wrong, err
				}
			}
		case *http2.GoAwayFrame:
			return lat, wrong, fmt.Errorf("goaway: %v", f.ErrCode)
		case *http2.RSTStreamFrame:
			return lat, wrong, fmt.Errorf("stream %d reset: %v", f.StreamID, f.ErrCode)
		case *http2.DataFrame:
			data := f.Data()
			received += int64(len(data))
			// The message follows the 5-byte gRPC prefix; its first field
			// is overall_code (field 1, varint).
			if len(data) >= 7 && data[5] == 0x08 {
				status[f.StreamID] = int(data[6])
			} else if len(data) >= 5 {
				status[f.StreamID] = 0
			}
		case *http2.MetaHeadersFrame:
			if !f.StreamEnded() {
				break
			}
			c, ok := inflight[f.StreamID]
			if !ok {
				return lat, wrong, fmt.Errorf("answer on unknown stream %d", f.StreamID)
			}
			lat = append(lat, time.Since(c.start))
			if f.PseudoValue("status") != "" && f.PseudoValue("status") != "200" {
				wrong++ // a trailers-only error answer
			} else if grpcStatus(f) != "0" || status[f.StreamID] != int(l.want) {
				wrong++
			}
			delete(inflight, f.StreamID)
			delete(status, f.StreamID)
			if ctx.Err() != nil && len(inflight) == 0 {
				return lat, wrong, nil
			}
			if ctx.Err() == nil {
				if sendWindow < 64<<10 {
					return lat, wrong, errors.New("send window exhausted: the service stopped granting window")
				}
				send(c.slot)
			}
		}
		if received >= h2Window/2 {
			if err := fr.WriteWindowUpdate(0, uint32(received)); err != nil {
				return lat, wrong, err
			}
			received = 0
		}
		// Flush once the frames already read are handled: one write for
		// every call that completed in this batch.
		if br.Buffered() == 0 && bw.Buffered() > 0 {
			if err := bw.Flush(); err != nil {
				return lat, wrong, err
			}
		}
	}
}

func grpcStatus(f *http2.MetaHeadersFrame) string {
	for _, hf := range f.RegularFields() {
		if hf.Name == "grpc-status" {
			return hf.Value
		}
	}
	return ""
}

func writeFrameHeader(w io.Writer, length int, t http2.FrameType, flags http2.Flags, stream uint32) {
	var h [9]byte
	h[0], h[1], h[2] = byte(length>>16), byte(length>>8), byte(length)
	h[3], h[4] = byte(t), byte(flags)
	binary.BigEndian.PutUint32(h[5:], stream)
	_, _ = w.Write(h[:])
}

// TestH2LoadChecksAnswers keeps the lean generator honest where it runs
// only for benchmarks: against the real service it gets answers, counts
// none wrong when they are what it expects, and counts every one wrong
// when they are not.
func TestH2LoadChecksAnswers(t *testing.T) {
	r := startRedis(t)
	in := startRatelimit(t, "ratelimit", writeRules(t, rulesYAML), "-redis.addrs", r.addr)
	var reqs []*rlsv3.RateLimitRequest
	for i := range 50 {
		reqs = append(reqs, &rlsv3.RateLimitRequest{Domain: "api", Descriptors: []*commonv3.RateLimitDescriptor{desc("bench", fmt.Sprint("h2load-", i))}})
	}
	for _, tc := range []struct {
		name     string
		want     rlsv3.RateLimitResponse_Code
		allWrong bool
	}{
		{"expected answers", rlsv3.RateLimitResponse_OK, false},
		{"unexpected answers", rlsv3.RateLimitResponse_OVER_LIMIT, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gen, err := newH2Load(in.grpc, 2, 4, reqs, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			res, err := gen.run(300 * time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.lat) < 8 {
				t.Fatalf("only %d answers in 300ms", len(res.lat))
			}
			if want := map[bool]int{false: 0, true: len(res.lat)}[tc.allWrong]; res.wrong != want {
				t.Fatalf("%d of %d answers counted wrong, want %d", res.wrong, len(res.lat), want)
			}
		})
	}
}
