package webhooks

import (
	"context"
	"fmt"
	"io"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// A receiver verifies a delivery with the Standard Webhooks library, as
// docs/webhooks.md shows: here a delivery signed during a rotation's grace,
// checked against each secret alone.
func Example_verify() {
	const current, previous = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	a := attempt{url: "https://crm.example.com/customerbus", contentMode: "structured", eventID: "0193a3c2-5b1e-7c3a-9f0e-2d4f6a8b1c0d",
		payload: []byte(`{"specversion":"1.0","id":"0193a3c2-5b1e-7c3a-9f0e-2d4f6a8b1c0d","type":"customer.created","source":"/customerbus/customers"}`),
		secrets: []string{current, previous}}
	req, err := request(context.Background(), a, time.Now())
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(req.Body)
	for _, secret := range []string{current, previous, "whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldCBhdCBhbGw="} {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			panic(err)
		}
		fmt.Println(wh.Verify(body, req.Header) == nil)
	}
	// Output:
	// true
	// true
	// false
}
