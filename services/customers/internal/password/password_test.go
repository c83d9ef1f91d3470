package password

import (
	"strings"
	"testing"
)

func TestHashMatchesOnlyItsPassword(t *testing.T) {
	h, err := Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q is not argon2id with the OWASP parameters", h)
	}
	if strings.Contains(h, "horse") {
		t.Error("hash contains the password")
	}
	for pw, want := range map[string]bool{"correct horse battery staple": true, "correct horse battery stapl": false, "": false} {
		if ok, err := Matches(pw, h); err != nil || ok != want {
			t.Errorf("Matches(%q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	h2, _ := Hash("correct horse battery staple")
	if h2 == h {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	if _, err := Matches("x", "$2a$10$bcrypt"); err == nil {
		t.Error("a foreign hash format was accepted")
	}
}
