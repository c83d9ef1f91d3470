package events_test

import (
	"context"
	"fmt"
	"log"

	cenats "github.com/cloudevents/sdk-go/protocol/nats/v2"
	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// An app that only needs live events reads them over a plain core NATS
// subscription with the CloudEvents SDK's NATS binding.
func Example_coreSubscription() {
	nc, err := nats.Connect("nats://127.0.0.1:4223")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	_, err = nc.Subscribe("customerbus.events.customer.>", func(m *nats.Msg) {
		e, err := binding.ToEvent(context.Background(), cenats.NewMessage(m))
		if err != nil {
			log.Printf("not a CloudEvent: %v", err)
			return
		}
		fmt.Println(e.Type(), e.Subject(), e.Extensions()["sequence"])
	})
	if err != nil {
		log.Fatal(err)
	}
	select {}
}

// An app that must not miss an event reads through a durable JetStream
// consumer, acking each event once handled, with the CloudEvents SDK's
// JetStream binding.
func Example_durableConsumer() {
	ctx := context.Background()
	nc, err := nats.Connect("nats://127.0.0.1:4223")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "CUSTOMERBUS_EVENTS", jetstream.ConsumerConfig{
		Durable:       "crm-sync",
		AckPolicy:     jetstream.AckExplicitPolicy,
		FilterSubject: "customerbus.events.customer.>",
	})
	if err != nil {
		log.Fatal(err)
	}
	_, err = cons.Consume(func(m jetstream.Msg) {
		e, err := binding.ToEvent(ctx, cejs.NewMessage(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}))
		if err != nil {
			_ = m.Term() // never readable: do not redeliver
			return
		}
		fmt.Println(e.Type(), e.Subject(), e.Extensions()["sequence"])
		_ = m.Ack()
	})
	if err != nil {
		log.Fatal(err)
	}
	select {}
}
