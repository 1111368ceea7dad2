package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// writeRequest writes req as an HTTP/1.1 request: the head, then the body
// (chunked when its length is unknown, each chunk flushed as it is read,
// so streams keep flowing) and its trailers; the body is closed. It is
// what Request.Write does for a client request, framing included, without
// fmt, a transfer writer per request or sorted headers, which made it the
// largest per-request cost of the client after the system calls.
func writeRequest(bw *bufio.Writer, req *http.Request) error {
	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	if body != nil {
		defer body.Close() // written or not, as Request.Write does
	}
	if req.ContentLength != 0 && body == nil {
		return fmt.Errorf("http: Request.ContentLength=%d with nil Body", req.ContentLength)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	host, err := validHost(host)
	if err != nil {
		return err
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	target := req.URL.RequestURI()
	if method == http.MethodConnect && req.URL.Path == "" {
		target = host
		if req.URL.Opaque != "" {
			target = req.URL.Opaque
		}
	}
	if hasCTL(target) {
		return errors.New("net/http: can't write control character in Request.URL")
	}

	// Framing, as net/http frames a client request: an unknown length is
	// chunked (CONNECT's body is the tunnel itself); a known empty body
	// is announced only for methods that usually carry one.
	length := req.ContentLength
	if body != nil && length == 0 {
		length = -1
	}
	chunked := length < 0 && method != http.MethodConnect

	bw.WriteString(method)
	bw.WriteByte(' ')
	bw.WriteString(target)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	userAgent := "Go-http-client/1.1"
	if _, ok := req.Header["User-Agent"]; ok {
		userAgent = req.Header.Get("User-Agent")
	}
	if userAgent != "" {
		writeField(bw, "User-Agent", userAgent)
	}
	if req.Close && !httpguts.HeaderValuesContainsToken(req.Header["Connection"], "close") {
		bw.WriteString("Connection: close\r\n")
	}
	switch {
	case chunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case length > 0 || length == 0 && (method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch):
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), length, 10))
		bw.WriteString("\r\n")
	}
	if len(req.Trailer) > 0 {
		names := make([]string, 0, len(req.Trailer))
		for k := range req.Trailer {
			k = http.CanonicalHeaderKey(k)
			switch k {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return fmt.Errorf("http: invalid Trailer key %q", k)
			}
			names = append(names, k)
		}
		slices.Sort(names)
		writeField(bw, "Trailer", strings.Join(names, ","))
	}
	writeFields(bw, req.Header, requestFieldsWrittenApart)
	if _, err := bw.WriteString("\r\n"); err != nil {
		return err
	}
	if body == nil {
		return nil
	}
	if chunked {
		// The head goes out before a streamed body, which may only come
		// once the upstream has answered something.
		if err := bw.Flush(); err != nil {
			return err
		}
		return writeChunked(bw, body, req.Trailer)
	}
	if length < 0 {
		_, err := bw.ReadFrom(body)
		return err
	}
	n, err := bw.ReadFrom(io.LimitReader(body, length))
	if err != nil {
		return err
	}
	extra, err := io.Copy(io.Discard, body)
	if err != nil {
		return err
	}
	if n+extra != length {
		return fmt.Errorf("http: ContentLength=%d with Body length %d", length, n+extra)
	}
	return nil
}

// requestFieldsWrittenApart are the header fields writeRequest writes from
// the request's own fields rather than from its Header.
var requestFieldsWrittenApart = []string{"Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer"}

var chunkBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writeChunked writes body in chunked framing, flushing after every chunk,
// then the last chunk and trailer.
func writeChunked(bw *bufio.Writer, body io.Reader, trailer http.Header) error {
	bp := chunkBuffers.Get().(*[]byte)
	defer chunkBuffers.Put(bp)
	buf := *bp
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(n), 16))
			bw.WriteString("\r\n")
			bw.Write(buf[:n])
			bw.WriteString("\r\n")
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	bw.WriteString("0\r\n")
	writeFields(bw, trailer, nil)
	_, err := bw.WriteString("\r\n")
	return err
}

// writeFields writes h as header lines, except the names in skip
// (canonical). As net/http does, fields with invalid names are dropped
// and CR or LF in a value becomes a space; the order is the map's.
func writeFields(bw *bufio.Writer, h http.Header, skip []string) {
	for k, vs := range h {
		if slices.Contains(skip, k) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vs {
			writeField(bw, k, v)
		}
	}
}

func writeField(bw *bufio.Writer, k, v string) {
	if strings.ContainsAny(v, "\r\n") || v != "" && (isSpace(v[0]) || isSpace(v[len(v)-1])) {
		v = textproto.TrimString(newlineToSpace.Replace(v)) // ASCII space only, as net/http
	}
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

var newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

func isSpace(b byte) bool { return b == ' ' || b == '\t' }

// validHost checks a Host value as net/http does before writing it,
// converting an internationalised name to punycode and dropping an IPv6
// zone, which is meaningful only on the sending host.
func validHost(host string) (string, error) {
	for i := range len(host) {
		if host[i] >= 0x80 {
			var err error
			if host, err = httpguts.PunycodeHostPort(host); err != nil {
				return "", fmt.Errorf("http: invalid Host header %q: %w", host, err)
			}
			break
		}
	}
	if !httpguts.ValidHostHeader(host) {
		return "", errors.New("http: invalid Host header")
	}
	// The zone is what follows the last '%' before the last ']'.
	if strings.HasPrefix(host, "[") {
		if end := strings.LastIndexByte(host, ']'); end >= 0 {
			if zone := strings.LastIndexByte(host[:end], '%'); zone >= 0 {
				host = host[:zone] + host[end:]
			}
		}
	}
	return host, nil
}

func hasCTL(s string) bool {
	for i := range len(s) {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}
