package events

import (
	"context"
	"github.com/google/uuid"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Commands that integrators publish as CloudEvents whose type is the
// command, on customerbus.commands.<command>. Each is the same use case as
// an HTTP route, with the route's body as data plus the ids the route has in
// its path.
const (
	CmdCustomerCreate                = "customer.create"
	CmdCustomerUpdate                = "customer.update"
	CmdCustomerDelete                = "customer.delete"
	CmdCustomerMetadataUpdate        = "customer.metadata.update"
	CmdCustomerPrivateMetadataUpdate = "customer.private_metadata.update"
	CmdCustomerAddressCreate         = "customer.address.create"
	CmdCustomerAddressUpdate         = "customer.address.update"
	CmdCustomerAddressDelete         = "customer.address.delete"
	CmdGroupCustomersAdd             = "customer_group.customers.add"
	CmdGroupCustomersRemove          = "customer_group.customers.remove"
	CmdOrderRecord                   = "order.record"
	CmdCustomerMerge                 = "customer.merge"
)

// Commands lists every command.
var Commands = []string{
	CmdCustomerCreate, CmdCustomerUpdate, CmdCustomerDelete, CmdCustomerMetadataUpdate,
	CmdCustomerPrivateMetadataUpdate, CmdCustomerAddressCreate, CmdCustomerAddressUpdate,
	CmdCustomerAddressDelete, CmdGroupCustomersAdd, CmdGroupCustomersRemove, CmdOrderRecord, CmdCustomerMerge,
}

// IsCommand reports whether the type is a command.
func IsCommand(eventType string) bool { return slices.Contains(Commands, eventType) }

// Command streams and subjects.
const (
	CommandsStream        = "CUSTOMERBUS_COMMANDS"
	CommandsSubjectPrefix = "customerbus.commands."
	// CommandsConsumer is the durable consumer of CommandsStream that every
	// instance of the command service shares.
	CommandsConsumer = "customers"
	// CommandsDeadLetterStream keeps commands that cannot be run at all (not
	// a CloudEvent, an unknown type), with the reason.
	CommandsDeadLetterStream = "CUSTOMERBUS_COMMANDS_DLQ"
	// NotificationsDeadLetterStream keeps the notifications the notifier
	// gave up on; the notifier creates it.
	NotificationsDeadLetterStream = "CUSTOMERBUS_NOTIFICATIONS_DLQ"
	CommandsDeadLetterPrefix      = "customerbus.deadletter.commands."
)

// CommandSubject is the subject a command is published on.
func CommandSubject(command string) string { return CommandsSubjectPrefix + command }

// CommandsFromPrefix starts the subject of a command that came from an
// integrator's NATS account: the account's import maps its
// customerbus.commands.<command> to customerbus.commands.from.<account>.<command>
// (deploy/nats/accounts.conf), so the server, not the sender, names the account.
const CommandsFromPrefix = CommandsSubjectPrefix + "from."

// CommandSender reads who sent a command from the subject it was stored
// on: the integrator's account, or "" for a publisher in the command
// service's own account. ok is false when the subject does not name the
// command (the subject and the CloudEvent's type disagree); the account is
// still the sender's.
func CommandSender(subject, command string) (account string, ok bool) {
	if subject == CommandSubject(command) {
		return "", true
	}
	rest, found := strings.CutPrefix(subject, CommandsFromPrefix)
	if !found {
		return "", false
	}
	account, cmd, _ := strings.Cut(rest, ".")
	return account, account != "" && cmd == command
}

// CommandRejected is the result of a command that was not applied.
const CommandRejected = "command.rejected"

// CommandRejectedData is the data of command.rejected: the command and the
// problem, as HTTP would have answered it.
type CommandRejectedData struct {
	CommandID string       `json:"command_id"`
	Command   string       `json:"command"`
	Error     CommandError `json:"error"`
}

// CommandError is a problem (RFC 9457 fields) with the contract's field errors.
type CommandError struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Errors []FieldError `json:"errors"`
	// MergedInto: the customer the command named was merged into this one.
	MergedInto *uuid.UUID `json:"merged_into,omitempty"`
}

// FieldError is one problem with one field of a command's data.
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// EnsureCommandStreams creates the command stream and its dead-letter
// stream, or updates them as EnsureStream does. Commands are kept until
// they expire (maxAge, 0 forever): the consumer's acks do not remove them, so
// a new consumer or an operator can replay them.
func EnsureCommandStreams(ctx context.Context, js jetstream.JetStream, opts StreamOptions) error {
	for _, cfg := range []jetstream.StreamConfig{{
		Name:        CommandsStream,
		Description: "customerbus commands from integrators (CloudEvents 1.0)",
		Subjects:    []string{CommandsSubjectPrefix + ">"},
		MaxAge:      opts.MaxAge,
		Duplicates:  DuplicateWindow,
	}, {
		Name:        CommandsDeadLetterStream,
		Description: "customerbus commands that could not be run, with the reason",
		Subjects:    []string{CommandsDeadLetterPrefix + ">"},
		MaxAge:      opts.DeadLetterMaxAge,
	}} {
		cfg.Storage = jetstream.FileStorage
		cfg.Replicas = opts.Replicas
		if err := EnsureStream(ctx, js, cfg); err != nil {
			return err
		}
	}
	return nil
}
