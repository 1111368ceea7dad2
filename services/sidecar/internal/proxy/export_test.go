package proxy

// NewRequestID exposes the x-request-id generator to the external tests.
var NewRequestID = newRequestID
