package bus

import (
	"context"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/merge"
	"github.com/customerbus/customerbus/services/customers/internal/order"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

// malformedError marks data that cannot be read as the command's (not JSON,
// wrong types, unknown fields, an unknown command): poison, unlike a
// refusal of well-formed data.
type malformedError struct{ error }

func (e *malformedError) Unwrap() error { return e.error }

// decode reads a command's data strictly, as HTTP reads a body.
func decode[T any](e cloudevents.Event) (T, error) {
	var in T
	if err := problem.DecodeJSON(e.Data(), 1<<20, &in); err != nil {
		return in, &malformedError{err}
	}
	return in, nil
}

// id reads a UUID field of a command's data.
func id(field, v string) (uuid.UUID, error) {
	u, err := uuid.Parse(v)
	if err != nil {
		return uuid.Nil, customer.FieldErr(field, customer.CodeInvalid, "%s must be a UUID", field)
	}
	return u, nil
}

// targeted is the data of a command about a resource that its HTTP route
// names in the path: the body, plus the resource's id under one field.
type targeted interface{ target() (field, value string) }

type customerTarget struct {
	ID string `json:"id"`
}

func (t customerTarget) target() (string, string) { return "id", t.ID }

type groupTarget struct {
	GroupID string `json:"group_id"`
}

func (t groupTarget) target() (string, string) { return "group_id", t.GroupID }

type addressTarget struct {
	CustomerID string `json:"customer_id"`
	AddressID  string `json:"address_id"`
}

func (t addressTarget) target() (string, string) { return "customer_id", t.CustomerID }

// decodeTargeted reads a command's data and the id of the resource it names.
func decodeTargeted[T targeted](e cloudevents.Event) (T, uuid.UUID, error) {
	in, err := decode[T](e)
	if err != nil {
		return in, uuid.Nil, err
	}
	u, err := id(in.target())
	return in, u, err
}

// runCommand runs one command through the customer use cases.
func runCommand(ctx context.Context, d Domain, o customer.Origin, e cloudevents.Event) (any, error) {
	svc := d.Customers
	switch e.Type() {
	case events.CmdCustomerCreate:
		in, err := decode[customer.CreateInput](e)
		if err != nil {
			return nil, err
		}
		return customerResult(svc.Create(ctx, o, in))
	case events.CmdCustomerUpdate:
		in, cid, err := decodeTargeted[struct {
			customerTarget
			customer.UpdateInput
		}](e)
		if err != nil {
			return nil, err
		}
		return customerResult(svc.Update(ctx, o, cid, in.UpdateInput))
	case events.CmdCustomerDelete:
		_, cid, err := decodeTargeted[customerTarget](e)
		if err != nil {
			return nil, err
		}
		return nil, svc.Delete(ctx, o, cid)
	case events.CmdCustomerMetadataUpdate, events.CmdCustomerPrivateMetadataUpdate:
		in, cid, err := decodeTargeted[struct {
			customerTarget
			customer.MetadataInput
		}](e)
		if err != nil {
			return nil, err
		}
		return customerResult(svc.UpdateMetadata(ctx, o, cid, e.Type() == events.CmdCustomerPrivateMetadataUpdate, in.MetadataInput))
	case events.CmdCustomerAddressCreate, events.CmdCustomerAddressUpdate, events.CmdCustomerAddressDelete:
		return runAddressCommand(ctx, svc, o, e)
	case events.CmdGroupCustomersAdd, events.CmdGroupCustomersRemove:
		in, gid, err := decodeTargeted[struct {
			groupTarget
			CustomerIDs []string `json:"customer_ids"`
		}](e)
		if err != nil {
			return nil, err
		}
		members := customer.MembersInput{Add: in.CustomerIDs}
		if e.Type() == events.CmdGroupCustomersRemove {
			members = customer.MembersInput{Remove: in.CustomerIDs}
		}
		ch, err := svc.ChangeMembers(ctx, o, gid, members)
		if err != nil {
			return nil, err
		}
		return ch.View(), nil
	case events.CmdCustomerMerge:
		in, cid, err := decodeTargeted[struct {
			customerTarget
			merge.Input
		}](e)
		if err != nil {
			return nil, err
		}
		return customerResult(d.Merges.Merge(ctx, o, cid, in.Input))
	case events.CmdOrderRecord:
		in, err := decode[order.OrderInput](e)
		if err != nil {
			return nil, err
		}
		ord, _, err := d.Orders.RecordOrder(ctx, o, in)
		if err != nil {
			return nil, err
		}
		return ord.Public(), nil
	}
	return nil, &malformedError{customer.FieldErr("type", "unknown_command", "%q is not a command; see events.Commands", e.Type())}
}

func runAddressCommand(ctx context.Context, svc *customer.Service, o customer.Origin, e cloudevents.Event) (any, error) {
	in, cid, err := decodeTargeted[struct {
		addressTarget
		customer.AddressInput
	}](e)
	if err != nil {
		return nil, err
	}
	if e.Type() == events.CmdCustomerAddressCreate {
		c, a, err := svc.CreateAddress(ctx, o, cid, in.AddressInput)
		if err != nil {
			return nil, err
		}
		return a.Public(c), nil
	}
	aid, err := id("address_id", in.AddressID)
	if err != nil {
		return nil, err
	}
	if e.Type() == events.CmdCustomerAddressDelete {
		return nil, svc.DeleteAddress(ctx, o, cid, aid)
	}
	c, a, err := svc.UpdateAddress(ctx, o, cid, aid, in.AddressInput)
	if err != nil {
		return nil, err
	}
	return a.Public(c), nil
}

// customerResult is the staff view of a customer, as HTTP answers it.
func customerResult(c customer.Customer, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return c.Staff(), nil
}
