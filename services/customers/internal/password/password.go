// Package password hashes customer passwords with argon2id and checks them
// against the stored hash, in the PHC string format. It also takes the hashes
// of customers brought from another system (argon2, bcrypt, PBKDF2, scrypt:
// see Import), checks passwords against them, and says when a stored hash
// should be replaced by one of ours (NeedsRehash).
package password

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// OWASP's argon2id baseline: 19 MiB of memory, two passes, one lane. Each
// hash costs about 20 ms of one core, slow enough against guessing and cheap
// enough for a login endpoint.
const (
	memoryKiB = 19 * 1024
	passes    = 2
	lanes     = 1
	saltLen   = 16
	keyLen    = 32
)

// Length policy, in characters: NIST SP 800-63B asks for at least 8 and for
// allowing long passphrases.
const (
	MinLength = 8
	MaxLength = 128
)

// Hash returns the PHC string of password with a fresh random salt.
func Hash(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, passes, memoryKiB, lanes, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, memoryKiB, passes, lanes, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Matches reports whether password hashes to encoded, in any format Import
// takes, with the parameters encoded names (so hashes made with older
// parameters or by another system still verify). A hash Import would refuse
// is an error, never a match.
func Matches(password, encoded string) (bool, error) {
	h, err := parse(encoded)
	if err != nil {
		return false, err
	}
	return h.matches([]byte(password))
}

// NeedsRehash reports whether encoded is anything but our own argon2id with
// today's parameters: after a successful login, such a hash is replaced by
// Hash of the password.
func NeedsRehash(encoded string) bool {
	h, err := parse(encoded)
	if err != nil {
		return true
	}
	a, ok := h.(*argon2Hash)
	return !ok || !a.id || a.memory != memoryKiB || a.time != passes || a.threads != lanes ||
		len(a.salt) != saltLen || len(a.key) != keyLen
}
