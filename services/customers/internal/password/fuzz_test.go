package password

import (
	"errors"
	"testing"
)

// FuzzImport: Import never panics, refuses with one of its two errors, and
// what it accepts is stable (importing it again gives it back) and can be
// checked by Matches without an error. The seed corpus is in
// testdata/fuzz/FuzzImport, with the known answers added here.
func FuzzImport(f *testing.F) {
	for _, k := range knownAnswers {
		f.Add(k.hash)
	}
	f.Fuzz(func(t *testing.T, encoded string) {
		stored, err := Import(encoded)
		if err != nil {
			if !errors.Is(err, ErrUnsupportedHash) && !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("Import error %v is neither ErrUnsupportedHash nor ErrMalformedHash", err)
			}
			return
		}
		if again, err := Import(stored); err != nil || again != stored {
			t.Fatalf("Import(%q) = %q, %v; want it unchanged", stored, again, err)
		}
		if _, err := Matches("password", stored); err != nil {
			t.Fatalf("Matches on an imported hash: %v", err)
		}
	})
}
