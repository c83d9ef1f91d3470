package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors of Import (and of Matches, for a stored hash it could not take).
var (
	// ErrUnsupportedHash: the hash is of a scheme or variant we do not take
	// (md5-crypt, argon2d, bcrypt's $2x$, Django's pbkdf2_sha1, ...).
	ErrUnsupportedHash = errors.New("password: unsupported hash scheme")
	// ErrMalformedHash: the scheme is one we take, but the string is not a
	// well-formed hash of it, or its parameters are beyond our limits. The
	// wrapping error says which part is wrong.
	ErrMalformedHash = errors.New("password: malformed hash")
)

// Limits on imported hashes. A hash sets the cost of every login against it,
// right or wrong, so a hostile or careless import could make each login
// take minutes or gigabytes; these bound one check to about two seconds of
// one core and 256 MiB on a current server, well above what the libraries'
// defaults ask (OWASP, Django, passlib, PHP, argon2-cffi).
const (
	// argon2: memory m (KiB) at most 256 MiB, and m·t (the memory traffic
	// that sets the time) at most 1 GiB; lanes p at most 16.
	maxArgon2MemoryKiB  = 256 * 1024
	maxArgon2MemoryTime = 1024 * 1024
	maxArgon2Lanes      = 16
	// bcrypt: cost 4 (bcrypt's minimum) to 15; each step doubles the time,
	// 15 is about 2.5 s, and bcrypt's own maximum, 31, would be days.
	minBcryptCost = 4
	maxBcryptCost = 15
	// PBKDF2: iterations from 1000 (lower is not a password hash but a
	// digest) to 5 M with SHA-256 and 2 M with SHA-512 (Django's default
	// is 1 M with SHA-256, OWASP asks for 600 k and 210 k).
	minPBKDF2Iterations       = 1000
	maxPBKDF2SHA256Iterations = 5_000_000
	maxPBKDF2SHA512Iterations = 2_000_000
	// scrypt: N = 2^ln with ln at most 20, memory 128·N·r at most 256 MiB,
	// work 128·N·r·p at most 512 MiB; r and p at most 32 and 16.
	maxScryptLogN = 20
	maxScryptNR   = 1 << 21
	maxScryptNRP  = 1 << 22
	maxScryptR    = 32
	maxScryptP    = 16
	// Every scheme: salt 4 to 64 bytes (Django's test vectors use 7), derived
	// key 16 to 64 bytes.
	minSalt, maxSalt = 4, 64
	minKey, maxKey   = 16, 64
)

// Import checks that encoded is a password hash from another system in a
// format we take, well formed and within our limits, and returns it as we
// store it. Taken, in their standard strings:
//
//   - argon2id and argon2i (version 19): $argon2id$v=19$m=…,t=…,p=…$salt$hash,
//     and Django's argon2$argon2id$v=19$… (stored without Django's prefix);
//   - bcrypt: $2a$, $2b$ and $2y$ (PHP's name for 2b, stored as $2b$), and
//     Django's bcrypt$$2b$… (stored without the prefix);
//   - PBKDF2 with SHA-256 or SHA-512: the PHC string
//     $pbkdf2-sha256$i=…[,l=…]$salt$hash, passlib's
//     $pbkdf2-sha256$rounds$salt$hash (in passlib's adapted base64), and
//     Django's pbkdf2_sha256$iterations$salt$hash;
//   - scrypt: passlib's $scrypt$ln=…,r=…,p=…$salt$hash and Django's
//     scrypt$N$salt$r$p$hash.
//
// Everything else is ErrUnsupportedHash; a string of one of these schemes that
// is not well formed, or is beyond the limits above, is ErrMalformedHash,
// wrapped with what is wrong. Neither error quotes the hash.
func Import(encoded string) (string, error) {
	h, err := parse(encoded)
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

// parsed is a hash of one scheme, parsed.
type parsed interface {
	// matches reports whether password hashes to it.
	matches(password []byte) (bool, error)
	// String is the hash as we store it: the string it was parsed from,
	// unless that needed normalising.
	String() string
}

// parse recognises the scheme of encoded and parses it.
func parse(encoded string) (parsed, error) {
	switch {
	case encoded == "":
		return nil, fmt.Errorf("%w: empty", ErrMalformedHash)
	case strings.HasPrefix(encoded, "$argon2id$"), strings.HasPrefix(encoded, "$argon2i$"):
		return parseArgon2(encoded)
	case strings.HasPrefix(encoded, "argon2$argon2id$"), strings.HasPrefix(encoded, "argon2$argon2i$"):
		// Django's argon2 hasher writes its name before argon2-cffi's
		// string, and drops that string's leading "$".
		return parseArgon2(strings.TrimPrefix(encoded, "argon2"))
	case strings.HasPrefix(encoded, "$2a$"), strings.HasPrefix(encoded, "$2b$"), strings.HasPrefix(encoded, "$2y$"):
		return parseBcrypt(encoded)
	case strings.HasPrefix(encoded, "bcrypt$$2"):
		// Django's bcrypt hasher, likewise.
		return parseBcrypt(strings.TrimPrefix(encoded, "bcrypt$"))
	case strings.HasPrefix(encoded, "$pbkdf2-sha256$"), strings.HasPrefix(encoded, "$pbkdf2-sha512$"):
		return parsePBKDF2(encoded)
	case strings.HasPrefix(encoded, "pbkdf2_sha256$"):
		return parseDjangoPBKDF2(encoded)
	case strings.HasPrefix(encoded, "$scrypt$"):
		return parseScrypt(encoded)
	case strings.HasPrefix(encoded, "scrypt$"):
		return parseDjangoScrypt(encoded)
	}
	return nil, unsupported(encoded)
}

// unsupported names the scheme of encoded, as far as it can be told, without
// quoting the rest.
func unsupported(encoded string) error {
	id, _, _ := strings.Cut(strings.TrimPrefix(encoded, "$"), "$")
	if id == "" || len(id) > 20 || strings.ContainsFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		return fmt.Errorf("%w: not a hash string of a known scheme", ErrUnsupportedHash)
	}
	return fmt.Errorf("%w %q", ErrUnsupportedHash, id)
}

// malformed is ErrMalformedHash for scheme, saying what is wrong.
func malformed(scheme, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformedHash, scheme, fmt.Sprintf(format, args...))
}

// decimal parses a PHC decimal: digits only, no sign, no leading zero, at
// most max.
func decimal(s string, max uint64) (uint64, bool) {
	if s == "" || len(s) > 20 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n <= max
}

// Base64 as the formats write it. Strict: the unused bits of the last
// character must be zero, so that each value has one encoding and Import
// keeps the string as it is.
var (
	// PHC's "B64": standard base64 without padding.
	phcB64 = base64.RawStdEncoding.Strict()
	// Django's: standard base64 with padding.
	djangoB64 = base64.StdEncoding.Strict()
)

// decodeBytes decodes field with enc and checks its length.
func decodeBytes(enc *base64.Encoding, scheme, field, s string, min, max int) ([]byte, error) {
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, malformed(scheme, "%s is not valid base64", field)
	}
	if len(b) < min || len(b) > max {
		return nil, malformed(scheme, "%s is %d bytes, not %d to %d", field, len(b), min, max)
	}
	return b, nil
}

// passlibB64 decodes passlib's adapted base64: the standard alphabet with
// "." for "+", without padding.
func passlibB64(scheme, field, s string, min, max int) ([]byte, error) {
	if strings.ContainsAny(s, "+=") {
		return nil, malformed(scheme, "%s is not passlib's adapted base64", field)
	}
	return decodeBytes(phcB64, scheme, field, strings.ReplaceAll(s, ".", "+"), min, max)
}

// djangoSalt checks a Django salt: Django uses the salt's text as it
// stands, and never a "$" in it.
func djangoSalt(scheme, s string) error {
	if len(s) < minSalt || len(s) > maxSalt {
		return malformed(scheme, "salt is %d characters, not %d to %d", len(s), minSalt, maxSalt)
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c > '~' {
			return malformed(scheme, "salt has a character other than printable ASCII")
		}
	}
	return nil
}
