package customer

import "time"

// Checks validates the input of a use case of another domain package (the
// orders) with the rules customers are held to, collecting every field
// error rather than stopping at the first.
type Checks struct{ r rules }

// Fail records a field error.
func (c *Checks) Fail(field, code, format string, args ...any) {
	c.r.fail(field, code, format, args...)
}

// Err is the ValidationError of the failures so far, or nil.
func (c *Checks) Err() error { return c.r.err() }

// Email is a normalised email address.
func (c *Checks) Email(field, raw string) string { return c.r.email(field, raw) }

// Text is trimmed text of at most max characters.
func (c *Checks) Text(field, raw string, max int) string { return c.r.text(field, raw, max) }

// RequiredText is Text that must not be empty.
func (c *Checks) RequiredText(field, raw string, max int) string {
	return c.r.requiredText(field, raw, max)
}

// Time is a time in UTC to the microsecond, within years 1 to 9999.
func (c *Checks) Time(field string, t time.Time) time.Time { return c.r.instant(field, t) }

// Metadata is a metadata map within the limits on keys, values and size.
func (c *Checks) Metadata(field string, m map[string]string) map[string]string {
	return c.r.metadata(field, m)
}

// Link checks an email link's redirect URL and channel (both or neither,
// or both when required).
func (c *Checks) Link(l EmailLink, required bool) { c.r.link(l, required) }

// Limit is a page size, the default for 0.
func (c *Checks) Limit(n int) int { return c.r.limit(n) }

// Cursor decodes a page cursor of the given order; nil for none.
func (c *Checks) Cursor(s, order string) *Cursor { return c.r.cursor(s, order) }
