package password

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// The ways PBKDF2 hashes are written.
const (
	pbkdf2PHC     = iota // $pbkdf2-sha256$i=…[,l=…]$salt$hash, PHC B64
	pbkdf2Passlib        // $pbkdf2-sha256$rounds$salt$hash, passlib's adapted base64
	pbkdf2Django         // pbkdf2_sha256$iterations$salt$hash, the salt as text, the hash in padded base64
)

// pbkdf2Hash is a PBKDF2-HMAC hash.
type pbkdf2Hash struct {
	form       int
	sha512     bool
	iterations int
	withLength bool // the PHC string has l=
	salt, key  []byte
}

// digest is the hash function and its name in the PHC and passlib ids.
func (h *pbkdf2Hash) digest() (func() hash.Hash, string, int) {
	if h.sha512 {
		return sha512.New, "sha512", maxPBKDF2SHA512Iterations
	}
	return sha256.New, "sha256", maxPBKDF2SHA256Iterations
}

// parsePBKDF2 parses the PHC and the passlib strings: the same id, told
// apart by their parameter field.
func parsePBKDF2(s string) (parsed, error) {
	parts := strings.Split(s, "$")
	scheme := parts[1]
	h := &pbkdf2Hash{sha512: scheme == "pbkdf2-sha512"}
	if len(parts) != 5 {
		return nil, malformed(scheme, "want $%s$i=…$salt$hash or $%s$rounds$salt$hash, got %d fields", scheme, scheme, len(parts)-1)
	}
	_, _, maxIter := h.digest()
	digestLen := 32
	if h.sha512 {
		digestLen = 64
	}
	params := parts[2]
	var err error
	if params != "" && params[0] >= '0' && params[0] <= '9' {
		// passlib: the rounds alone, and a key of the digest's full length.
		h.form = pbkdf2Passlib
		if h.iterations, err = iterations(scheme, params, maxIter); err != nil {
			return nil, err
		}
		if h.salt, err = passlibB64(scheme, "salt", parts[3], minSalt, maxSalt); err != nil {
			return nil, err
		}
		if h.key, err = passlibB64(scheme, "hash", parts[4], digestLen, digestLen); err != nil {
			return nil, err
		}
		return h, nil
	}
	h.form = pbkdf2PHC
	i, l, hasL := strings.Cut(params, ",")
	i, ok := strings.CutPrefix(i, "i=")
	if !ok {
		return nil, malformed(scheme, "parameters are not i=…[,l=…]")
	}
	if h.iterations, err = iterations(scheme, i, maxIter); err != nil {
		return nil, err
	}
	wantLen := uint64(0)
	if hasL {
		h.withLength = true
		l, ok := strings.CutPrefix(l, "l=")
		if !ok {
			return nil, malformed(scheme, "parameters are not i=…[,l=…]")
		}
		if wantLen, ok = decimal(l, maxKey); !ok || wantLen < minKey {
			return nil, malformed(scheme, "l is not a number from %d to %d", minKey, maxKey)
		}
	}
	if h.salt, err = decodeBytes(phcB64, scheme, "salt", parts[3], minSalt, maxSalt); err != nil {
		return nil, err
	}
	if h.key, err = decodeBytes(phcB64, scheme, "hash", parts[4], minKey, maxKey); err != nil {
		return nil, err
	}
	if hasL && uint64(len(h.key)) != wantLen {
		return nil, malformed(scheme, "hash is %d bytes but l is %d", len(h.key), wantLen)
	}
	return h, nil
}

// parseDjangoPBKDF2 parses Django's pbkdf2_sha256$iterations$salt$hash.
func parseDjangoPBKDF2(s string) (parsed, error) {
	const scheme = "pbkdf2_sha256"
	parts := strings.Split(s, "$")
	if len(parts) != 4 {
		return nil, malformed(scheme, "want pbkdf2_sha256$iterations$salt$hash, got %d fields", len(parts))
	}
	h := &pbkdf2Hash{form: pbkdf2Django}
	var err error
	if h.iterations, err = iterations(scheme, parts[1], maxPBKDF2SHA256Iterations); err != nil {
		return nil, err
	}
	if err := djangoSalt(scheme, parts[2]); err != nil {
		return nil, err
	}
	h.salt = []byte(parts[2])
	if h.key, err = decodeBytes(djangoB64, scheme, "hash", parts[3], 32, 32); err != nil {
		return nil, err
	}
	return h, nil
}

// iterations parses an iteration count within our limits.
func iterations(scheme, s string, max int) (int, error) {
	n, ok := decimal(s, uint64(max))
	if !ok || n < minPBKDF2Iterations {
		return 0, malformed(scheme, "iterations are not a number from %d to %d", minPBKDF2Iterations, max)
	}
	return int(n), nil
}

func (h *pbkdf2Hash) matches(password []byte) (bool, error) {
	fn, _, _ := h.digest()
	got, err := pbkdf2.Key(fn, string(password), h.salt, h.iterations, len(h.key))
	if err != nil {
		return false, fmt.Errorf("password: pbkdf2: %w", err)
	}
	return subtle.ConstantTimeCompare(got, h.key) == 1, nil
}

func (h *pbkdf2Hash) String() string {
	_, name, _ := h.digest()
	iter := strconv.Itoa(h.iterations)
	switch h.form {
	case pbkdf2Django:
		return "pbkdf2_sha256$" + iter + "$" + string(h.salt) + "$" + djangoB64.EncodeToString(h.key)
	case pbkdf2Passlib:
		ab64 := func(b []byte) string { return strings.ReplaceAll(phcB64.EncodeToString(b), "+", ".") }
		return "$pbkdf2-" + name + "$" + iter + "$" + ab64(h.salt) + "$" + ab64(h.key)
	}
	params := "i=" + iter
	if h.withLength {
		params += ",l=" + strconv.Itoa(len(h.key))
	}
	return "$pbkdf2-" + name + "$" + params + "$" + phcB64.EncodeToString(h.salt) + "$" + phcB64.EncodeToString(h.key)
}
