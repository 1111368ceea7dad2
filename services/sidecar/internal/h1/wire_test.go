package h1

import (
	"bufio"
	"bytes"
	"io"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// requestCase builds a fresh request each call, so the two writers get
// their own bodies.
type requestCase struct {
	name  string
	build func() *http.Request
}

func newReq(method, target string, body io.Reader, length int64, edit func(*http.Request)) func() *http.Request {
	var content []byte
	if body != nil {
		content, _ = io.ReadAll(body)
	}
	return func() *http.Request {
		u, err := url.Parse(target)
		if err != nil {
			panic(err)
		}
		var rc io.ReadCloser = http.NoBody
		if body != nil {
			rc = io.NopCloser(io.MultiReader(bytes.NewReader(content))) // a reader of no known length
		}
		req := &http.Request{Method: method, URL: u, Host: u.Host, Header: http.Header{}, Body: rc, ContentLength: length}
		if edit != nil {
			edit(req)
		}
		return req
	}
}

var requestCases = []requestCase{
	{"get", newReq("GET", "http://a.example/p?q=1", nil, 0, func(r *http.Request) {
		r.Header["X-Multi"] = []string{"1", "2"}
		r.Header.Set("Accept", "*/*")
	})},
	{"user agent absent gets the default", newReq("GET", "http://a.example/", nil, 0, nil)},
	{"user agent empty is not sent", newReq("GET", "http://a.example/", nil, 0, func(r *http.Request) { r.Header["User-Agent"] = nil })},
	{"user agent set", newReq("GET", "http://a.example/", nil, 0, func(r *http.Request) { r.Header.Set("User-Agent", "curl/8") })},
	{"values with newlines and edge spaces", newReq("GET", "http://a.example/", nil, 0, func(r *http.Request) {
		r.Header["X-Bad"] = []string{"a\r\nInjected: yes", "  padded\t"}
	})},
	{"invalid field name dropped", newReq("GET", "http://a.example/", nil, 0, func(r *http.Request) { r.Header["Bad Name"] = []string{"x"} })},
	{"host header fields come from the request", newReq("GET", "http://a.example/", nil, 0, func(r *http.Request) {
		r.Header.Set("Host", "other.example")
		r.Header.Set("Content-Length", "99")
		r.Header.Set("Transfer-Encoding", "gzip")
	})},
	{"host differs from URL", newReq("GET", "http://10.0.0.1:8080/x", nil, 0, func(r *http.Request) { r.Host = "svc.mesh" })},
	{"ipv6 zone dropped", newReq("GET", "http://[fe80::1%25eth0]:80/", nil, 0, nil)},
	{"connection close", newReq("GET", "http://a.example/", nil, 0, func(r *http.Request) { r.Close = true })},
	{"post empty body", newReq("POST", "http://a.example/", nil, 0, nil)},
	{"delete empty body", newReq("DELETE", "http://a.example/", nil, 0, nil)},
	{"post with length", newReq("POST", "http://a.example/", strings.NewReader("hello"), 5, nil)},
	{"put chunked with trailers", newReq("PUT", "http://a.example/", strings.NewReader(strings.Repeat("x", 70000)), -1, func(r *http.Request) {
		r.Trailer = http.Header{"X-Sum": {"70000"}, "X-Other": {"b"}}
	})},
	{"body shorter than length", newReq("POST", "http://a.example/", strings.NewReader("abc"), 5, nil)},
	{"body longer than length", newReq("POST", "http://a.example/", strings.NewReader("abcdef"), 5, nil)},
	{"invalid trailer name", newReq("POST", "http://a.example/", strings.NewReader("abc"), -1, func(r *http.Request) {
		r.Trailer = http.Header{"Content-Length": {"1"}}
	})},
	{"control character in path", newReq("GET", "http://a.example/", nil, 0, func(r *http.Request) { r.URL.Opaque = "/a\x01b" })},
}

// parsed is what a server reads from a written request.
type parsed struct {
	Method, RequestURI, Host string
	Header, Trailer          http.Header
	ContentLength            int64
	TransferEncoding         []string
	Body                     string
}

func parse(t *testing.T, wire []byte) parsed {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(wire)))
	if err != nil {
		t.Fatalf("written request does not parse: %v\n%q", err, wire)
	}
	b, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatalf("body: %v\n%q", err, wire)
	}
	return parsed{req.Method, req.RequestURI, req.Host, req.Header, req.Trailer, req.ContentLength, req.TransferEncoding, string(b)}
}

// TestWriteRequestMatchesNetHTTP: what a server reads from writeRequest's
// output is what it reads from Request.Write's, and both refuse the same
// requests.
func TestWriteRequestMatchesNetHTTP(t *testing.T) {
	for _, tc := range requestCases {
		t.Run(tc.name, func(t *testing.T) {
			var ours, theirs bytes.Buffer
			bw := bufio.NewWriter(&ours)
			err := writeRequest(bw, tc.build())
			_ = bw.Flush()
			werr := tc.build().Write(&theirs)
			if (err == nil) != (werr == nil) {
				t.Fatalf("writeRequest error %v, Request.Write error %v", err, werr)
			}
			if err != nil {
				return
			}
			got, want := parse(t, ours.Bytes()), parse(t, theirs.Bytes())
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("server reads\n%+v\nwant (as from Request.Write)\n%+v\nwire:\n%s", got, want, ours.Bytes())
			}
		})
	}
}

// TestWriteRequestRefusesAnInvalidHost: net/http would send such a request
// with an empty Host; a proxy would then forward a request other than the
// one it received, so it refuses (the h1 server answers 400 before).
func TestWriteRequestRefusesAnInvalidHost(t *testing.T) {
	for _, host := range []string{"a b", "a/b", "a\x00"} {
		req := newReq("GET", "http://a.example/", nil, 0, func(r *http.Request) { r.Host = host })()
		if err := writeRequest(bufio.NewWriter(io.Discard), req); err == nil {
			t.Errorf("host %q written", host)
		}
	}
}

func TestWriteRequestClosesTheBody(t *testing.T) {
	for _, length := range []int64{5, -1} {
		body := &closeRecorder{Reader: strings.NewReader("hello")}
		req := &http.Request{Method: "POST", URL: &url.URL{Scheme: "http", Host: "a", Path: "/"}, Header: http.Header{}, Body: body, ContentLength: length}
		if err := writeRequest(bufio.NewWriter(io.Discard), req); err != nil {
			t.Fatal(err)
		}
		if !body.closed {
			t.Fatalf("length %d: body not closed", length)
		}
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestWriteFieldsSkipsAndSanitises(t *testing.T) {
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	writeFields(bw, http.Header{"A": {"1", "2"}, "Skip-Me": {"x"}, "B": {" v\n"}}, []string{"Skip-Me"})
	_ = bw.Flush()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\r\n"), "\r\n")
	slices.Sort(lines)
	if want := []string{"A: 1", "A: 2", "B: v"}; !slices.Equal(lines, want) {
		t.Fatalf("lines %q, want %q", lines, want)
	}
}

// FuzzWriteRequest: for any method, target, header and body a server
// parses the same request from writeRequest as from Request.Write.
func FuzzWriteRequest(f *testing.F) {
	f.Add("GET", "/p?q=1", "a.example", "X-A", "v", "", int64(0))
	f.Add("POST", "/", "a.example:80", "Content-Type", "text/plain", "hello", int64(5))
	f.Add("PUT", "/x", "[::1]:8080", "X-B", " padded ", "chunky", int64(-1))
	f.Fuzz(func(t *testing.T, method, target, host, key, value, body string, length int64) {
		if !validMethodForFuzz(method) || len(body) > 1<<16 || !httpguts.ValidHostHeader(host) {
			return
		}
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		if length != -1 {
			length = int64(len(body))
		}
		build := func() *http.Request {
			var rc io.ReadCloser = http.NoBody
			if body != "" {
				rc = io.NopCloser(io.MultiReader(strings.NewReader(body)))
			} else {
				length = 0
			}
			uu := *u
			return &http.Request{Method: method, URL: &uu, Host: host, Header: http.Header{key: {value}}, Body: rc, ContentLength: length}
		}
		if method == "GET" || method == "HEAD" || method == "DELETE" || method == "OPTIONS" || method == "CONNECT" {
			// net/http probes or streams these bodies differently.
			if body != "" {
				return
			}
		}
		var ours, theirs bytes.Buffer
		bw := bufio.NewWriter(&ours)
		err = writeRequest(bw, build())
		_ = bw.Flush()
		werr := build().Write(&theirs)
		if (err == nil) != (werr == nil) {
			t.Fatalf("writeRequest error %v, Request.Write error %v", err, werr)
		}
		if err != nil {
			return
		}
		r1, e1 := http.ReadRequest(bufio.NewReader(&ours))
		r2, e2 := http.ReadRequest(bufio.NewReader(&theirs))
		if (e1 == nil) != (e2 == nil) {
			t.Fatalf("parse: ours %v, net/http's %v", e1, e2)
		}
		if e1 != nil {
			return
		}
		b1, _ := io.ReadAll(r1.Body)
		b2, _ := io.ReadAll(r2.Body)
		if r1.Method != r2.Method || r1.RequestURI != r2.RequestURI || r1.Host != r2.Host ||
			!maps.EqualFunc(r1.Header, r2.Header, slices.Equal) || !bytes.Equal(b1, b2) {
			t.Fatalf("ours %+v %q\nnet/http %+v %q", r1, b1, r2, b2)
		}
	})
}

func validMethodForFuzz(m string) bool {
	if m == "" {
		return false
	}
	for i := range len(m) {
		if c := m[i]; c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", rune(c)) {
			return false
		}
	}
	return true
}
