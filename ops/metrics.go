package ops

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// The dependencies' metrics are read when Prometheus scrapes, so they are
// as fresh as the scrape and cost nothing between scrapes.

// registerMetrics registers the metrics of the database pool and of the
// streams and consumers of needs.
func registerMetrics(reg prometheus.Registerer, needs Needs) {
	if needs.Pool != nil {
		reg.MustRegister(poolCollector{needs.Pool})
	}
	if needs.JS != nil {
		reg.MustRegister(jetStreamCollector{needs})
	}
}

var (
	poolConnections = prometheus.NewDesc("customerbus_db_pool_connections",
		"Connections of the database pool, by state: acquired (in use), idle, constructing.", []string{"state"}, nil)
	poolMaxConnections = prometheus.NewDesc("customerbus_db_pool_max_connections",
		"The most connections the pool opens (DB_MAX_CONNS, or pgx's default).", nil, nil)
	poolAcquires = prometheus.NewDesc("customerbus_db_pool_acquires_total",
		"Connections taken from the pool.", nil, nil)
	poolEmptyAcquires = prometheus.NewDesc("customerbus_db_pool_empty_acquires_total",
		"Acquires that found no idle connection and waited for one.", nil, nil)
	poolEmptyAcquireWait = prometheus.NewDesc("customerbus_db_pool_empty_acquire_wait_seconds_total",
		"Time acquires waited because the pool had no idle connection.", nil, nil)
	poolCanceledAcquires = prometheus.NewDesc("customerbus_db_pool_canceled_acquires_total",
		"Acquires given up (their request ended) before a connection came.", nil, nil)
)

// poolCollector reads the pool's statistics.
type poolCollector struct{ pool *pgxpool.Pool }

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolConnections, poolMaxConnections, poolAcquires, poolEmptyAcquires, poolEmptyAcquireWait, poolCanceledAcquires} {
		ch <- d
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(poolConnections, gauge, float64(s.AcquiredConns()), "acquired")
	ch <- prometheus.MustNewConstMetric(poolConnections, gauge, float64(s.IdleConns()), "idle")
	ch <- prometheus.MustNewConstMetric(poolConnections, gauge, float64(s.ConstructingConns()), "constructing")
	ch <- prometheus.MustNewConstMetric(poolMaxConnections, gauge, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(poolAcquires, counter, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolEmptyAcquires, counter, float64(s.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolEmptyAcquireWait, counter, s.EmptyAcquireWaitTime().Seconds())
	ch <- prometheus.MustNewConstMetric(poolCanceledAcquires, counter, float64(s.CanceledAcquireCount()))
}

var (
	natsConnected = prometheus.NewDesc("customerbus_nats_connected",
		"1 while the process is connected to a NATS server, else 0 (and the stream and consumer metrics are missing).", nil, nil)
	streamMessages = prometheus.NewDesc("customerbus_stream_messages",
		"Messages the stream holds.", []string{"stream"}, nil)
	consumerPending = prometheus.NewDesc("customerbus_consumer_pending_messages",
		"Messages of the stream the durable consumer has not had delivered yet: its lag.", []string{"stream", "consumer"}, nil)
	consumerAckPending = prometheus.NewDesc("customerbus_consumer_ack_pending_messages",
		"Messages delivered to the durable consumer and not acknowledged yet.", []string{"stream", "consumer"}, nil)
	consumerRedelivered = prometheus.NewDesc("customerbus_consumer_redelivered_messages",
		"Messages delivered to the durable consumer more than once and not acknowledged yet.", []string{"stream", "consumer"}, nil)
)

// jetStreamCollector reads the streams' and the durable consumers' state
// from JetStream.
type jetStreamCollector struct{ needs Needs }

// collectTimeout bounds asking JetStream at a scrape: what did not answer
// by then is left out of it.
const collectTimeout = 2 * time.Second

func (c jetStreamCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{natsConnected, streamMessages, consumerPending, consumerAckPending, consumerRedelivered} {
		ch <- d
	}
}

func (c jetStreamCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := prometheus.GaugeValue
	if connected(c.needs.JS.Conn()) != nil {
		ch <- prometheus.MustNewConstMetric(natsConnected, gauge, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(natsConnected, gauge, 1)
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	// A stream or consumer not there yet (or not answering) has no
	// series: /readyz says what is missing.
	for _, s := range c.needs.Streams {
		if st, err := c.needs.JS.Stream(ctx, s); err == nil {
			ch <- prometheus.MustNewConstMetric(streamMessages, gauge, float64(st.CachedInfo().State.Msgs), s)
		}
	}
	for _, cons := range c.needs.Consumers {
		jc, err := c.needs.JS.Consumer(ctx, cons.Stream, cons.Durable)
		if err != nil {
			continue
		}
		info := jc.CachedInfo()
		ch <- prometheus.MustNewConstMetric(consumerPending, gauge, float64(info.NumPending), cons.Stream, cons.Durable)
		ch <- prometheus.MustNewConstMetric(consumerAckPending, gauge, float64(info.NumAckPending), cons.Stream, cons.Durable)
		ch <- prometheus.MustNewConstMetric(consumerRedelivered, gauge, float64(info.NumRedelivered), cons.Stream, cons.Durable)
	}
}
