package events

import "testing"

func TestCommandSender(t *testing.T) {
	for _, tc := range []struct {
		subject, command, account string
		ok                        bool
	}{
		{"customerbus.commands.customer.create", "customer.create", "", true},
		{"customerbus.commands.from.ERP.customer.address.create", "customer.address.create", "ERP", true},
		// The ERP account publishing on customerbus.commands.from.CRM.… locally.
		{"customerbus.commands.from.ERP.from.CRM.customer.create", "customer.create", "ERP", false},
		{"customerbus.commands.customer.update", "customer.create", "", false},
		{"customerbus.commands.from.ERP.customer.update", "customer.create", "ERP", false},
		{"customerbus.commands.from..customer.create", "customer.create", "", false},
		{"customerbus.commands.from.ERP", "customer.create", "ERP", false},
	} {
		account, ok := CommandSender(tc.subject, tc.command)
		if account != tc.account || ok != tc.ok {
			t.Errorf("CommandSender(%q, %q) = %q, %v; want %q, %v", tc.subject, tc.command, account, ok, tc.account, tc.ok)
		}
	}
}
