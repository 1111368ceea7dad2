// Package shop holds the HTTP handlers of the demo shop's four apps —
// frontend, users, orders and billing — and the client they use to call one
// another through configurable upstream addresses.
//
// Every response names the instance that produced it, in the X-Served-By
// header and a served_by JSON field, so load balancing across instances is
// visible from outside.
package shop

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// ServedByHeader names the instance that answered.
const ServedByHeader = "X-Served-By"

// Apps are the names of the shop's apps, which are also their service names
// (the Host header their callers send).
var Apps = []string{"frontend", "users", "orders", "billing"}

// errorBody is the JSON body of every error answer.
type errorBody struct {
	Error    string `json:"error"`
	ServedBy string `json:"served_by"`
}

// ServedBy sets the X-Served-By header on every response of next.
func ServedBy(instance string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(ServedByHeader, instance)
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, instance string, status int, format string, args ...any) {
	writeJSON(w, status, errorBody{Error: fmt.Sprintf(format, args...), ServedBy: instance})
}

// pathID parses the path value name as a positive integer id, answering 400
// and returning false if it is not one.
func pathID(w http.ResponseWriter, r *http.Request, instance, name string) (int, bool) {
	raw := r.PathValue(name)
	id, err := strconv.Atoi(raw)
	if err != nil || id < 1 {
		writeError(w, instance, http.StatusBadRequest, "%s: want a positive integer, got %q", name, raw)
		return 0, false
	}
	return id, true
}

func healthz(instance string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "served_by": instance})
	}
}
