// Package harness starts Switchyard's real binaries as processes for
// end-to-end tests.
//
// Binary builds each binary under services/ once per test process (or takes it
// from $SWITCHYARD_BIN); FreeAddr hands out loopback addresses; Start runs a
// process with its output captured to a file, waits until its ready URL
// answers 200, dumps the log tail if the test fails and stops the process by
// PID (SIGTERM, then SIGKILL after a grace period) when the test ends.
// NewTraceReceiver runs an in-test OTLP gRPC trace collector so a test can
// assert on the spans the processes export, and Poll retries an assertion
// until it holds.
package harness
