package api

import (
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/registry/v1"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/catalog"
)

func instanceFromProto(p *registryv1.Instance) catalog.Instance {
	in := catalog.Instance{
		Service: p.GetService(), ID: p.GetId(), Address: p.GetAddress(), Port: p.GetPort(),
		Tags: p.GetTags(), Metadata: p.GetMetadata(),
		Region: p.GetLocality().GetRegion(), Zone: p.GetLocality().GetZone(),
		Health: catalog.Health(p.GetHealth()), HealthOutput: p.GetHealthOutput(),
	}
	if c := p.GetCheck(); c != nil {
		in.Check = catalog.Check{
			Type:                    catalog.CheckType(c.GetType()),
			TTL:                     c.GetTtl().AsDuration(),
			Interval:                c.GetInterval().AsDuration(),
			Timeout:                 c.GetTimeout().AsDuration(),
			FailuresBeforeCritical:  c.GetFailuresBeforeCritical(),
			SuccessesBeforePassing:  c.GetSuccessesBeforePassing(),
			HTTPPath:                c.GetHttpPath(),
			GRPCService:             c.GetGrpcService(),
			DeregisterCriticalAfter: c.GetDeregisterCriticalAfter().AsDuration(),
		}
	}
	return in
}

func durOrNil(d interface{ Nanoseconds() int64 }) *durationpb.Duration {
	if d.Nanoseconds() == 0 {
		return nil
	}
	return &durationpb.Duration{Seconds: d.Nanoseconds() / 1e9, Nanos: int32(d.Nanoseconds() % 1e9)}
}

func instanceToProto(in *catalog.Instance) *registryv1.Instance {
	p := &registryv1.Instance{
		Service: in.Service, Id: in.ID, Address: in.Address, Port: in.Port,
		Tags: in.Tags, Metadata: in.Metadata,
		Health: registryv1.HealthStatus(in.Health), HealthOutput: in.HealthOutput,
		CreateIndex: in.CreateIndex, ModifyIndex: in.ModifyIndex,
	}
	if in.Region != "" || in.Zone != "" {
		p.Locality = &registryv1.Locality{Region: in.Region, Zone: in.Zone}
	}
	if !in.HealthChangedAt.IsZero() {
		p.HealthChangedAt = timestamppb.New(in.HealthChangedAt)
	}
	c := in.Check
	if c != (catalog.Check{}) {
		p.Check = &registryv1.HealthCheck{
			Type: registryv1.CheckType(c.Type), Ttl: durOrNil(c.TTL), Interval: durOrNil(c.Interval), Timeout: durOrNil(c.Timeout),
			FailuresBeforeCritical: c.FailuresBeforeCritical, SuccessesBeforePassing: c.SuccessesBeforePassing,
			HttpPath: c.HTTPPath, GrpcService: c.GRPCService, DeregisterCriticalAfter: durOrNil(c.DeregisterCriticalAfter),
		}
	}
	return p
}

func instancesToProto(ins []*catalog.Instance) []*registryv1.Instance {
	out := make([]*registryv1.Instance, len(ins))
	for i, in := range ins {
		out[i] = instanceToProto(in)
	}
	return out
}

func configToProto(d *catalog.ConfigDoc) *registryv1.ConfigDocument {
	return &registryv1.ConfigDocument{Kind: d.Kind, Name: d.Name, Version: d.Version, Body: d.Body, CreateIndex: d.CreateIndex}
}

func eventToProto(ev catalog.Event) *registryv1.Event {
	p := &registryv1.Event{Type: registryv1.Event_Type(ev.Type), Index: ev.Index}
	if ev.Instance != nil {
		p.Instance = instanceToProto(ev.Instance)
	}
	if ev.Config != nil {
		p.Config = configToProto(ev.Config)
	}
	return p
}
