// Package supported is the table of the Envoy v3 message types and fields
// the sidecar implements. subsetgen writes it out as the sidecar's subset
// of the Envoy API (proto/switchyard/xdssubset); the sidecar decodes
// resources into that subset and refuses any field outside it.
package supported

import (
	"fmt"
	"maps"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Prefix is put before Envoy's package names in the subset's (package
// envoy.config.cluster.v3 becomes switchyard.xdssubset.envoy.config.cluster.v3);
// stripping it gives the Envoy name for type URLs and errors.
const Prefix = "switchyard.xdssubset."

// Fields lists, per Envoy message type, the fields the sidecar implements.
// A message type not listed is not in the subset; a field of a listed type
// whose message type is neither listed nor a well-known value type stops
// the generator.
var Fields = map[protoreflect.FullName][]string{
	// Listener
	"envoy.config.listener.v3.Listener":           {"name", "address", "filter_chains", "stat_prefix", "traffic_direction"},
	"envoy.config.listener.v3.FilterChain":        {"filters", "transport_socket", "name"},
	"envoy.config.listener.v3.Filter":             {"name", "typed_config"},
	"envoy.config.core.v3.Address":                {"socket_address"},
	"envoy.config.core.v3.SocketAddress":          {"address", "port_value", "protocol"},
	"envoy.config.core.v3.TransportSocket":        {"name", "typed_config"},
	"envoy.config.core.v3.ConfigSource":           {"ads", "resource_api_version"},
	"envoy.config.core.v3.AggregatedConfigSource": {},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager": {
		"stat_prefix", "codec_type", "rds", "route_config", "http_filters", "upgrade_configs",
		"forward_client_cert_details", "set_current_client_cert_details"},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails": {"uri"},
	"envoy.extensions.filters.network.rbac.v3.RBAC":                                                                 {"stat_prefix", "rules"},
	"envoy.extensions.filters.network.http_connection_manager.v3.Rds":                                               {"config_source", "route_config_name"},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter":                                        {"name", "typed_config"},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig":               {"upgrade_type"},
	"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy":                                                        {"stat_prefix", "cluster"},
	"envoy.extensions.filters.http.router.v3.Router":                                                                {},
	// TLS (certificates come from the local SVID source; see README)
	"envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext": {"common_tls_context", "require_client_certificate"},
	"envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext":   {"common_tls_context", "sni"},
	"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext": {
		"tls_certificate_sds_secret_configs", "validation_context_sds_secret_config", "combined_validation_context", "alpn_protocols"},
	"envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig":                                       {"name"},
	"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext": {"default_validation_context", "validation_context_sds_secret_config"},
	"envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext":                          {"match_typed_subject_alt_names"},
	"envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher":                                 {"san_type", "matcher"},
	// Cluster
	"envoy.config.cluster.v3.Cluster": {"name", "type", "eds_cluster_config", "connect_timeout", "lb_policy",
		"load_assignment", "circuit_breakers", "outlier_detection", "ring_hash_lb_config", "least_request_lb_config",
		"transport_socket", "typed_extension_protocol_options"},
	"envoy.config.cluster.v3.Cluster.EdsClusterConfig":               {"eds_config", "service_name"},
	"envoy.config.cluster.v3.Cluster.RingHashLbConfig":               {"minimum_ring_size"},
	"envoy.config.cluster.v3.Cluster.LeastRequestLbConfig":           {"choice_count"},
	"envoy.config.cluster.v3.CircuitBreakers":                        {"thresholds"},
	"envoy.config.cluster.v3.CircuitBreakers.Thresholds":             {"priority", "max_connections", "max_pending_requests", "max_requests", "max_retries", "retry_budget"},
	"envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget": {"budget_percent", "min_retry_concurrency"},
	"envoy.type.v3.Percent":                                          {"value"},
	"envoy.config.cluster.v3.OutlierDetection": {"consecutive_5xx", "consecutive_gateway_failure", "interval",
		"base_ejection_time", "max_ejection_time", "max_ejection_percent", "enforcing_consecutive_5xx",
		"enforcing_consecutive_gateway_failure", "enforcing_success_rate", "enforcing_consecutive_local_origin_failure", "success_rate_minimum_hosts",
		"success_rate_request_volume", "success_rate_stdev_factor"},
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions":                         {"explicit_http_config", "use_downstream_protocol_config", "common_http_protocol_options"},
	"envoy.config.core.v3.HttpProtocolOptions":                                       {"idle_timeout", "max_connection_duration"},
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig":      {"http_protocol_options", "http2_protocol_options"},
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig": {"http_protocol_options", "http2_protocol_options"},
	"envoy.config.core.v3.Http1ProtocolOptions":                                      {},
	"envoy.config.core.v3.Http2ProtocolOptions":                                      {},
	// Endpoints
	"envoy.config.endpoint.v3.ClusterLoadAssignment":        {"cluster_name", "endpoints", "policy"},
	"envoy.config.endpoint.v3.ClusterLoadAssignment.Policy": {"overprovisioning_factor"},
	"envoy.config.endpoint.v3.LocalityLbEndpoints":          {"locality", "lb_endpoints", "priority", "load_balancing_weight"},
	"envoy.config.core.v3.Locality":                         {"region", "zone", "sub_zone"},
	"envoy.config.endpoint.v3.LbEndpoint":                   {"endpoint", "health_status", "load_balancing_weight"},
	"envoy.config.endpoint.v3.Endpoint":                     {"address", "hostname"},
	// Routes
	"envoy.config.route.v3.RouteConfiguration": {"name", "virtual_hosts"},
	"envoy.config.route.v3.VirtualHost":        {"name", "domains", "routes"},
	"envoy.config.route.v3.Route": {"name", "match", "route", "typed_per_filter_config",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove"},
	"envoy.config.core.v3.HeaderValueOption":       {"header", "append_action"},
	"envoy.config.core.v3.HeaderValue":             {"key", "value"},
	"envoy.config.route.v3.RouteMatch":             {"prefix", "path", "safe_regex", "case_sensitive", "headers", "query_parameters"},
	"envoy.config.route.v3.HeaderMatcher":          {"name", "string_match", "present_match", "invert_match"},
	"envoy.config.route.v3.QueryParameterMatcher":  {"name", "string_match", "present_match"},
	"envoy.type.matcher.v3.StringMatcher":          {"exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"},
	"envoy.type.matcher.v3.RegexMatcher":           {"regex", "google_re2"},
	"envoy.type.matcher.v3.RegexMatcher.GoogleRE2": {},
	"envoy.config.route.v3.RouteAction": {"cluster", "weighted_clusters", "timeout", "prefix_rewrite", "retry_policy",
		"hash_policy", "request_mirror_policies", "rate_limits"},
	"envoy.config.route.v3.WeightedCluster":                             {"clusters", "total_weight"},
	"envoy.config.route.v3.WeightedCluster.ClusterWeight":               {"name", "weight"},
	"envoy.config.route.v3.RetryPolicy":                                 {"retry_on", "num_retries", "per_try_timeout", "retriable_status_codes", "retry_back_off"},
	"envoy.config.route.v3.RetryPolicy.RetryBackOff":                    {"base_interval", "max_interval"},
	"envoy.config.route.v3.RouteAction.HashPolicy":                      {"header", "cookie", "connection_properties"},
	"envoy.config.route.v3.RouteAction.HashPolicy.Header":               {"header_name"},
	"envoy.config.route.v3.RouteAction.HashPolicy.Cookie":               {"name"},
	"envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties": {"source_ip"},
	"envoy.config.route.v3.RouteAction.RequestMirrorPolicy":             {"cluster", "runtime_fraction"},
	"envoy.config.core.v3.RuntimeFractionalPercent":                     {"default_value"},
	"envoy.type.v3.FractionalPercent":                                   {"numerator", "denominator"},
	"envoy.config.route.v3.RateLimit":                                   {"actions"},
	"envoy.config.route.v3.RateLimit.Action":                            {"request_headers", "remote_address", "generic_key", "destination_cluster"},
	"envoy.config.route.v3.RateLimit.Action.RequestHeaders":             {"header_name", "descriptor_key"},
	"envoy.config.route.v3.RateLimit.Action.RemoteAddress":              {},
	"envoy.config.route.v3.RateLimit.Action.GenericKey":                 {"descriptor_value", "descriptor_key"},
	"envoy.config.route.v3.RateLimit.Action.DestinationCluster":         {},
	// HTTP filters
	"envoy.extensions.filters.http.fault.v3.HTTPFault":                {"delay", "abort"},
	"envoy.extensions.filters.common.fault.v3.FaultDelay":             {"fixed_delay", "header_delay", "percentage"},
	"envoy.extensions.filters.common.fault.v3.FaultDelay.HeaderDelay": {},
	"envoy.extensions.filters.http.fault.v3.FaultAbort":               {"http_status", "grpc_status", "header_abort", "percentage"},
	"envoy.extensions.filters.http.fault.v3.FaultAbort.HeaderAbort":   {},
	"envoy.extensions.filters.http.rbac.v3.RBAC":                      {"rules"},
	"envoy.config.rbac.v3.RBAC":                                       {"action", "policies"},
	"envoy.config.rbac.v3.Policy":                                     {"permissions", "principals"},
	"envoy.config.rbac.v3.Permission":                                 {"any", "and_rules", "or_rules", "not_rule", "header", "url_path", "destination_port"},
	"envoy.config.rbac.v3.Permission.Set":                             {"rules"},
	"envoy.config.rbac.v3.Principal":                                  {"any", "and_ids", "or_ids", "not_id", "authenticated", "header"},
	"envoy.config.rbac.v3.Principal.Set":                              {"ids"},
	"envoy.config.rbac.v3.Principal.Authenticated":                    {"principal_name"},
	"envoy.type.matcher.v3.PathMatcher":                               {"path"},
	"envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit": {"stat_prefix", "status", "token_bucket", "filter_enabled", "filter_enforced"},
	"envoy.type.v3.HttpStatus":                                        {"code"},
	"envoy.type.v3.TokenBucket":                                       {"max_tokens", "tokens_per_fill", "fill_interval"},
	"envoy.extensions.filters.http.ratelimit.v3.RateLimit":            {"domain", "timeout", "failure_mode_deny", "rate_limit_service", "enable_x_ratelimit_headers"},
	"envoy.config.ratelimit.v3.RateLimitServiceConfig":                {"grpc_service", "transport_api_version"},
	"envoy.config.core.v3.GrpcService":                                {"envoy_grpc", "timeout"},
	"envoy.config.core.v3.GrpcService.EnvoyGrpc":                      {"cluster_name"},
}

// Messages lists the fields of the Envoy API messages the sidecar
// exchanges with the control plane (ADS) and the rate limit service (RLS):
// what it sends and what it reads. They are not configuration, so a field
// left out here is ignored when it arrives, as by any gRPC client of an
// older version of the API; with these in the subset the sidecar needs
// none of go-control-plane's generated code.
var Messages = map[protoreflect.FullName][]string{
	// ADS (envoy.service.discovery.v3.AggregatedDiscoveryService)
	"envoy.service.discovery.v3.DiscoveryRequest":  {"version_info", "node", "resource_names", "type_url", "response_nonce", "error_detail"},
	"envoy.service.discovery.v3.DiscoveryResponse": {"version_info", "resources", "type_url", "nonce"},
	"envoy.config.core.v3.Node":                    {"id", "cluster", "metadata", "locality", "user_agent_name"},
	"google.rpc.Status":                            {"code", "message"},
	// RLS (envoy.service.ratelimit.v3.RateLimitService)
	"envoy.service.ratelimit.v3.RateLimitRequest":                    {"domain", "descriptors", "hits_addend"},
	"envoy.extensions.common.ratelimit.v3.RateLimitDescriptor":       {"entries"},
	"envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry": {"key", "value"},
	"envoy.service.ratelimit.v3.RateLimitResponse":                   {"overall_code", "statuses"},
	"envoy.service.ratelimit.v3.RateLimitResponse.DescriptorStatus":  {"code", "current_limit", "limit_remaining", "duration_until_reset"},
	"envoy.service.ratelimit.v3.RateLimitResponse.RateLimit":         {"requests_per_unit"},
}

// All is every message type of the subset with its fields: Fields and
// Messages together (a type may be in only one of them).
func All() (map[protoreflect.FullName][]string, error) {
	all := maps.Clone(Fields)
	for name, fields := range Messages {
		if _, dup := all[name]; dup {
			return nil, fmt.Errorf("%s is in both supported.Fields and supported.Messages", name)
		}
		all[name] = fields
	}
	return all, nil
}

// ValueTypes are the well-known types fields may use wholesale.
var ValueTypes = map[protoreflect.FullName]bool{
	"google.protobuf.Duration": true, "google.protobuf.UInt32Value": true, "google.protobuf.UInt64Value": true,
	"google.protobuf.BoolValue": true, "google.protobuf.DoubleValue": true, "google.protobuf.StringValue": true,
	"google.protobuf.Empty": true, "google.protobuf.Struct": true,
}
