package password

import (
	"encoding/base64"
	"errors"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// bcrypt's base64: its own alphabet, no padding.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

var (
	// The salt is decoded leniently: some generators pick 22 random
	// characters, and every bcrypt ignores the last one's unused bits.
	bcryptSalt = base64.NewEncoding(bcryptAlphabet).WithPadding(base64.NoPadding)
	// A hash whose last character has unused bits set never matches: it is
	// not one bcrypt wrote.
	bcryptKey = bcryptSalt.Strict()
)

// bcryptHash is a $2a$ or $2b$ string of 60 characters: the version, two
// digits of cost, 22 characters of salt and 31 of hash.
type bcryptHash struct{ s string }

func parseBcrypt(s string) (parsed, error) {
	const scheme = "bcrypt"
	if !strings.HasPrefix(s, "$2a$") && !strings.HasPrefix(s, "$2b$") && !strings.HasPrefix(s, "$2y$") {
		return nil, unsupported(s) // after Django's bcrypt$, another version (found by FuzzImport)
	}
	if len(s) != 60 {
		return nil, malformed(scheme, "is %d characters, not 60", len(s))
	}
	if s[6] != '$' {
		return nil, malformed(scheme, "cost is not two digits")
	}
	cost, ok := decimal(strings.TrimPrefix(s[4:6], "0"), 99)
	if !ok {
		return nil, malformed(scheme, "cost is not two digits")
	}
	if cost < minBcryptCost || cost > maxBcryptCost {
		return nil, malformed(scheme, "cost %d is outside %d to %d", cost, minBcryptCost, maxBcryptCost)
	}
	// Go's base64 skips \r and \n where bcrypt's own decoder refuses them
	// (found by FuzzImport).
	if _, err := bcryptSalt.DecodeString(s[7:29]); err != nil || strings.ContainsAny(s[7:29], "\r\n") {
		return nil, malformed(scheme, "salt is not bcrypt's base64")
	}
	if _, err := bcryptKey.DecodeString(s[29:]); err != nil || strings.ContainsAny(s[29:], "\r\n") {
		return nil, malformed(scheme, "hash is not bcrypt's base64")
	}
	// $2y$ is PHP's name for $2b$ (and x/crypto computes both alike): one
	// name for one algorithm in the store.
	if s[2] == 'y' {
		s = "$2b" + s[3:]
	}
	return bcryptHash{s}, nil
}

func (h bcryptHash) matches(password []byte) (bool, error) {
	// CompareHashAndPassword compares in constant time; like every bcrypt,
	// it reads at most 72 bytes of the password.
	err := bcrypt.CompareHashAndPassword([]byte(h.s), password)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	}
	return false, malformed("bcrypt", "%v", err)
}

func (h bcryptHash) String() string { return h.s }
