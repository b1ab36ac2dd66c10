// Package natscluster is the cloud side on a NATS cluster under faults,
// end to end, in its tests only: three nats-server processes built from
// the module this repository pins, gateways over MQTT to different
// nodes, two outpost-ingest processes sharing the stream's consumer, and
// nodes, an ingest process and the whole cluster killed and restarted
// while the gateways send (docs/nats.md, "Faults").
package natscluster
