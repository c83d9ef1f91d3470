package password

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/scrypt"
)

// knownAnswers are hashes copied from the documentation or the tests of the
// systems that wrote them, with their password.
var knownAnswers = []struct{ source, password, hash string }{
	{"passlib docs, pbkdf2_sha256", "password", "$pbkdf2-sha256$6400$0ZrzXitFSGltTQnBWOsdAw$Y11AchqV4b0sUisdZd0Xr97KWoymNE0LNNrnEgY4H9M"},
	{"passlib docs, pbkdf2_sha256 with a 10-byte salt", "password", "$pbkdf2-sha256$8000$XAuBMIYQQogxRg$tRRlz8hYn63B9LYiCd6PRo6FMiunY9ozmMMI3srxeRE"},
	{"Authelia docs, pbkdf2-sha512 in passlib's form (a '.' in the hash)", "insecure_secret", "$pbkdf2-sha512$310000$c8p78n7pUMln0jzvd4aK4Q$JNRBzwAo0ek5qKn50cFzzvE9RXV88h1wJn5KGiHrD0YKtZaR/nCb2CJPOsKaPK0hjf.9yHxzQGZziziccp6Yng"},
	{"@phc/format docs, pbkdf2-sha256 PHC string", "password", "$pbkdf2-sha256$i=6400$0ZrzXitFSGltTQnBWOsdAw$Y11AchqV4b0sUisdZd0Xr97KWoymNE0LNNrnEgY4H9M"},
	{"Django tests, pbkdf2_sha256", "lètmein", "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c="},
	{"passlib docs, scrypt", "password", "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E"},
	{"passlib docs, scrypt with ln=8", "password", "$scrypt$ln=8,r=8,p=1$WKs1xljLudd6z9kbY0wpJQ$yCR4iDZYDKv+iEJj6yHY0lv/epnfB6f/w1EbXrsJOuQ"},
	{"Django tests, scrypt", "lètmein", "scrypt$16384$seasalt$8$1$Qj3+9PPyRjSJIebHnG81TMjsqtaIGxNQG/aEB/NYafTJ7tibgfYz71m0ldQESkXFRkdVCBhhY8mx7rQwite/Pw=="},
	{"passlib docs, argon2i", "password", "$argon2i$v=19$m=512,t=2,p=2$aI2R0hpDyLm3ltLa+1/rvQ$LqPKjd6n8yniKtAithoR7A"},
	{"Django tests, argon2i", "secret", "argon2$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q"},
	{"Django tests, argon2id", "secret", "argon2$argon2id$v=19$m=102400,t=2,p=8$Y041dExhNkljRUUy$TMa6A8fPJhCAUXRhJXCXdw"},
	{"argon2 reference README, argon2i", "password", "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG"},
	{"crypt_blowfish test vectors, $2a$", "U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"},
	{"PHP docs (password_verify), $2y$", "rasmuslerdorf", "$2y$07$BCryptRequires22Chrcte/VlQH0piJtjXl.0t1XkA8pw9dMXTpOq"},
}

func TestKnownAnswersMatchOnlyTheirPassword(t *testing.T) {
	for _, k := range knownAnswers {
		t.Run(k.source, func(t *testing.T) {
			stored, err := Import(k.hash)
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			for pw, want := range map[string]bool{k.password: true, k.password + "x": false, "": false} {
				if ok, err := Matches(pw, stored); err != nil || ok != want {
					t.Errorf("Matches(%q) = %v, %v; want %v", pw, ok, err, want)
				}
			}
			if !NeedsRehash(stored) {
				t.Error("NeedsRehash = false for a foreign hash")
			}
		})
	}
}

// made are hashes made here with the x/crypto and standard libraries, in
// each format's string, of password.
func made(t *testing.T, password string) map[string]string {
	t.Helper()
	pw := []byte(password)
	salt := []byte("0123456789abcdef")
	b64 := base64.RawStdEncoding
	ab64 := func(b []byte) string { return strings.ReplaceAll(b64.EncodeToString(b), "+", ".") }
	out := map[string]string{}
	for _, cost := range []int{4, 5} {
		h, err := bcrypt.GenerateFromPassword(pw, cost)
		if err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprintf("bcrypt $2a$ cost %d", cost)] = string(h)
		out[fmt.Sprintf("bcrypt $2b$ cost %d", cost)] = strings.Replace(string(h), "$2a$", "$2b$", 1)
		out[fmt.Sprintf("bcrypt $2y$ cost %d", cost)] = strings.Replace(string(h), "$2a$", "$2y$", 1)
		out[fmt.Sprintf("Django bcrypt cost %d", cost)] = "bcrypt$" + string(h)
	}
	k256, _ := pbkdf2.Key(sha256.New, password, salt, 1000, 32)
	k512, _ := pbkdf2.Key(sha512.New, password, salt, 1000, 64)
	out["pbkdf2-sha256 PHC"] = "$pbkdf2-sha256$i=1000$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(k256)
	out["pbkdf2-sha256 PHC with l"] = "$pbkdf2-sha256$i=1000,l=32$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(k256)
	out["pbkdf2-sha512 PHC"] = "$pbkdf2-sha512$i=1000,l=64$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(k512)
	out["pbkdf2-sha256 passlib"] = "$pbkdf2-sha256$1000$" + ab64(salt) + "$" + ab64(k256)
	out["pbkdf2-sha512 passlib"] = "$pbkdf2-sha512$1000$" + ab64(salt) + "$" + ab64(k512)
	dj, _ := pbkdf2.Key(sha256.New, password, []byte("seasalt2"), 1000, 32)
	out["Django pbkdf2_sha256"] = "pbkdf2_sha256$1000$seasalt2$" + base64.StdEncoding.EncodeToString(dj)
	sk, err := scrypt.Key(pw, salt, 1<<10, 8, 2, 32)
	if err != nil {
		t.Fatal(err)
	}
	out["scrypt passlib"] = "$scrypt$ln=10,r=8,p=2$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(sk)
	dsk, err := scrypt.Key(pw, []byte("seasalt2"), 1<<10, 8, 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	out["Django scrypt"] = "scrypt$1024$seasalt2$8$1$" + base64.StdEncoding.EncodeToString(dsk)
	ai := argon2.Key(pw, salt, 3, 64, 2, 32)
	out["argon2i"] = "$argon2i$v=19$m=64,t=3,p=2$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(ai)
	aid := argon2.IDKey(pw, salt, 1, 256, 4, 16)
	out["argon2id, other parameters"] = "$argon2id$v=19$m=256,t=1,p=4$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(aid)
	return out
}

func TestImportedHashesMatchOnlyTheirPassword(t *testing.T) {
	const password = "An old pässword: 72 bytes or fewer"
	for name, h := range made(t, password) {
		t.Run(name, func(t *testing.T) {
			stored, err := Import(h)
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			want := h
			switch {
			case strings.HasPrefix(h, "$2y$"):
				want = "$2b$" + h[4:]
			case strings.HasPrefix(h, "bcrypt$"):
				want = strings.TrimPrefix(h, "bcrypt$")
			}
			if stored != want {
				t.Errorf("Import = %q, want %q", stored, want)
			}
			if again, err := Import(stored); err != nil || again != stored {
				t.Errorf("Import of the stored hash = %q, %v; want it unchanged", again, err)
			}
			for pw, ok := range map[string]bool{password: true, password[:len(password)-1]: false, "": false} {
				if got, err := Matches(pw, stored); err != nil || got != ok {
					t.Errorf("Matches(%q) = %v, %v; want %v", pw, got, err, ok)
				}
			}
			if !NeedsRehash(stored) {
				t.Error("NeedsRehash = false for a foreign hash")
			}
		})
	}
}

func TestOnlyOurOwnHashNeedsNoRehash(t *testing.T) {
	ours, err := Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Import(ours); err != nil || got != ours {
		t.Errorf("Import(our hash) = %q, %v", got, err)
	}
	if NeedsRehash(ours) {
		t.Error("NeedsRehash = true for today's argon2id")
	}
	salt, key := base64.RawStdEncoding.EncodeToString(make([]byte, 16)), base64.RawStdEncoding.EncodeToString(make([]byte, 32))
	for _, h := range []string{
		"$argon2id$v=19$m=65536,t=2,p=1$" + salt + "$" + key,      // other memory
		"$argon2id$v=19$m=19456,t=3,p=1$" + salt + "$" + key,      // other passes
		"$argon2id$v=19$m=19456,t=2,p=2$" + salt + "$" + key,      // other lanes
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key[:22], // shorter key
		"$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key,       // argon2i
		"", "garbage",
	} {
		if !NeedsRehash(h) {
			t.Errorf("NeedsRehash(%q) = false", h)
		}
	}
}

func TestBadHashesAreRefusedSayingWhatIsWrong(t *testing.T) {
	salt := base64.RawStdEncoding.EncodeToString([]byte("0123456789abcdef"))
	key := base64.RawStdEncoding.EncodeToString(make([]byte, 32))
	key64 := base64.RawStdEncoding.EncodeToString(make([]byte, 64))
	dkey := base64.StdEncoding.EncodeToString(make([]byte, 32))
	bc := "$2b$10$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"
	cases := []struct {
		name, hash string
		want       error
		says       string
	}{
		{"empty", "", ErrMalformedHash, "empty"},
		{"md5-crypt", "$1$saltsalt$hashhashhashhashhash", ErrUnsupportedHash, `"1"`},
		{"unknown $md5$", "$md5$rounds=5000$salt$hash", ErrUnsupportedHash, `"md5"`},
		{"Django pbkdf2_sha1", "pbkdf2_sha1$1000$salt$aGFzaA==", ErrUnsupportedHash, `"pbkdf2_sha1"`},
		{"plain text", "hunter2", ErrUnsupportedHash, `"hunter2"`},
		{"argon2d", "$argon2d$v=19$m=64,t=1,p=1$" + salt + "$" + key, ErrUnsupportedHash, `"argon2d"`},
		{"bcrypt $2x$", "$2x$10$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", ErrUnsupportedHash, `"2x"`},
		{"Django bcrypt $2x$", "bcrypt$$2x$10$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", ErrUnsupportedHash, `"2x"`},
		{"Django bcrypt without a version", "bcrypt$$20010$00000000000000000000000000000000000000000000000000002", ErrUnsupportedHash, `"20010"`},

		{"argon2 version 16", "$argon2i$m=64,t=1,p=1$" + salt + "$" + key, ErrUnsupportedHash, "version 16"},
		{"argon2 version 20", "$argon2id$v=20$m=64,t=1,p=1$" + salt + "$" + key, ErrUnsupportedHash, "only version 19"},
		{"argon2 missing hash", "$argon2id$v=19$m=64,t=1,p=1$" + salt, ErrMalformedHash, "fields"},
		{"argon2 parameters out of order", "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key, ErrMalformedHash, "in that order"},
		{"argon2 keyid", "$argon2id$v=19$m=64,t=1,p=1,keyid=AA$" + salt + "$" + key, ErrMalformedHash, "keyid"},
		{"argon2 memory over 256 MiB", "$argon2id$v=19$m=262145,t=1,p=1$" + salt + "$" + key, ErrMalformedHash, "m is not a number from 1 to 262144"},
		{"argon2 m·t over 1 GiB", "$argon2id$v=19$m=262144,t=5,p=1$" + salt + "$" + key, ErrMalformedHash, "m·t"},
		{"argon2 too many lanes", "$argon2id$v=19$m=1024,t=1,p=17$" + salt + "$" + key, ErrMalformedHash, "p is not a number from 1 to 16"},
		{"argon2 zero passes", "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key, ErrMalformedHash, "t is not"},
		{"argon2 memory below 8 KiB a lane", "$argon2id$v=19$m=8,t=1,p=2$" + salt + "$" + key, ErrMalformedHash, "minimum"},
		{"argon2 leading zero", "$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key, ErrMalformedHash, "m is not"},
		{"argon2 bad base64 salt", "$argon2id$v=19$m=64,t=1,p=1$sa!t$" + key, ErrMalformedHash, "salt is not valid base64"},
		{"argon2 padded hash", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "=", ErrMalformedHash, "hash is not valid base64"},
		{"argon2 short hash", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$AAAA", ErrMalformedHash, "hash is 3 bytes"},

		{"bcrypt short", bc[:59], ErrMalformedHash, "59 characters"},
		{"bcrypt cost 3", "$2b$03" + bc[6:], ErrMalformedHash, "cost 3 is outside 4 to 15"},
		{"bcrypt cost 31", "$2b$31" + bc[6:], ErrMalformedHash, "cost 31 is outside"},
		{"bcrypt cost not digits", "$2b$1x" + bc[6:], ErrMalformedHash, "cost is not two digits"},
		{"bcrypt no $ after cost", "$2b$10x" + bc[7:], ErrMalformedHash, "cost is not two digits"},
		{"bcrypt bad salt", bc[:7] + "!" + bc[8:], ErrMalformedHash, "salt is not"},
		{"bcrypt bad hash", bc[:59] + "+", ErrMalformedHash, "hash is not"},
		{"bcrypt hash with stray bits", bc[:59] + "X", ErrMalformedHash, "hash is not"},
		{"bcrypt $2a$10$bcrypt", "$2a$10$bcrypt", ErrMalformedHash, "13 characters"},

		{"pbkdf2 missing field", "$pbkdf2-sha256$1000$" + salt, ErrMalformedHash, "fields"},
		{"pbkdf2 too few iterations", "$pbkdf2-sha256$999$" + salt + "$" + key, ErrMalformedHash, "iterations are not a number from 1000 to 5000000"},
		{"pbkdf2-sha256 too many iterations", "$pbkdf2-sha256$i=5000001$" + salt + "$" + key, ErrMalformedHash, "iterations"},
		{"pbkdf2-sha512 too many iterations", "$pbkdf2-sha512$2000001$" + salt + "$" + key64, ErrMalformedHash, "from 1000 to 2000000"},
		{"pbkdf2 passlib hash not full length", "$pbkdf2-sha512$1000$" + salt + "$" + key, ErrMalformedHash, "hash is 32 bytes, not 64 to 64"},
		{"pbkdf2 passlib with '+'", "$pbkdf2-sha256$1000$" + salt + "$" + strings.Replace(key, "A", "+", 1), ErrMalformedHash, "adapted base64"},
		{"pbkdf2 PHC unknown parameter", "$pbkdf2-sha256$r=1000$" + salt + "$" + key, ErrMalformedHash, "i=…"},
		{"pbkdf2 PHC l disagrees", "$pbkdf2-sha256$i=1000,l=16$" + salt + "$" + key, ErrMalformedHash, "l is 16"},
		{"pbkdf2 PHC l too big", "$pbkdf2-sha256$i=1000,l=65$" + salt + "$" + key, ErrMalformedHash, "l is not"},
		{"pbkdf2 salt too long", "$pbkdf2-sha256$i=1000$" + base64.RawStdEncoding.EncodeToString(make([]byte, 65)) + "$" + key, ErrMalformedHash, "salt is 65 bytes, not 4 to 64"},
		{"Django pbkdf2 missing salt", "pbkdf2_sha256$1000$" + dkey, ErrMalformedHash, "fields"},
		{"Django pbkdf2 unpadded hash", "pbkdf2_sha256$1000$seasalt$" + strings.TrimRight(dkey, "="), ErrMalformedHash, "hash is not valid base64"},
		{"Django pbkdf2 short salt", "pbkdf2_sha256$1000$abc$" + dkey, ErrMalformedHash, "salt is 3 characters"},
		{"Django pbkdf2 salt with a space", "pbkdf2_sha256$1000$sea salt$" + dkey, ErrMalformedHash, "printable"},
		{"Django pbkdf2 iterations not a number", "pbkdf2_sha256$lots$seasalt$" + dkey, ErrMalformedHash, "iterations"},

		{"scrypt ln too big", "$scrypt$ln=21,r=1,p=1$" + salt + "$" + key, ErrMalformedHash, "ln is not a number from 1 to 20"},
		{"scrypt memory over 256 MiB", "$scrypt$ln=20,r=8,p=1$" + salt + "$" + key, ErrMalformedHash, "256 MiB"},
		{"scrypt work over the limit", "$scrypt$ln=17,r=8,p=8$" + salt + "$" + key, ErrMalformedHash, "N·r·p"},
		{"scrypt r zero", "$scrypt$ln=10,r=0,p=1$" + salt + "$" + key, ErrMalformedHash, "r is not"},
		{"scrypt parameters out of order", "$scrypt$r=8,ln=10,p=1$" + salt + "$" + key, ErrMalformedHash, "in that order"},
		{"scrypt bad base64", "$scrypt$ln=10,r=8,p=1$" + salt + "$" + key[:42] + "*", ErrMalformedHash, "hash is not valid base64"},
		{"Django scrypt N not a power of 2", "scrypt$1000$seasalt$8$1$" + dkey, ErrMalformedHash, "power of 2"},
		{"Django scrypt N too big", "scrypt$2097152$seasalt$8$1$" + dkey, ErrMalformedHash, "power of 2"},
		{"Django scrypt missing p", "scrypt$16384$seasalt$8$" + dkey, ErrMalformedHash, "fields"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Import(c.hash)
			if !errors.Is(err, c.want) {
				t.Fatalf("Import = %q, %v; want %v", got, err, c.want)
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("error %q does not say %q", err, c.says)
			}
			if len(c.hash) > 20 && strings.Contains(err.Error(), c.hash) {
				t.Errorf("error %q quotes the hash", err)
			}
			if ok, err := Matches("password", c.hash); ok || err == nil {
				t.Errorf("Matches = %v, %v; want an error", ok, err)
			}
		})
	}
}
