package password

import (
	"crypto/subtle"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// argon2Hash is an argon2id or argon2i PHC string.
type argon2Hash struct {
	id                    bool // argon2id; argon2i otherwise
	memory, time, threads uint32
	salt, key             []byte
}

func parseArgon2(s string) (parsed, error) {
	parts := strings.Split(s, "$")
	scheme := parts[1]
	h := &argon2Hash{id: scheme == "argon2id"}
	switch {
	case len(parts) == 5 && strings.HasPrefix(parts[2], "m="):
		// Without v=, the string is of argon2 1.0 (version 16), which
		// x/crypto does not compute.
		return nil, fmt.Errorf("%w: %s version 16 (no v= field); only version 19", ErrUnsupportedHash, scheme)
	case len(parts) != 6:
		return nil, malformed(scheme, "want $%s$v=19$m=…,t=…,p=…$salt$hash, got %d fields", scheme, len(parts)-1)
	}
	v, ok := strings.CutPrefix(parts[2], "v=")
	if !ok {
		return nil, malformed(scheme, "version field is not v=…")
	}
	if n, ok := decimal(v, 1<<32); !ok || n != argon2.Version {
		return nil, fmt.Errorf("%w: %s version %.10q; only version 19", ErrUnsupportedHash, scheme, v)
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return nil, malformed(scheme, "parameters are not m=…,t=…,p=… (keyid and data are not taken)")
	}
	fields := []struct {
		name string
		max  uint64
		to   *uint32
	}{{"m", maxArgon2MemoryKiB, &h.memory}, {"t", maxArgon2MemoryTime, &h.time}, {"p", maxArgon2Lanes, &h.threads}}
	for i, f := range fields {
		v, ok := strings.CutPrefix(params[i], f.name+"=")
		if !ok {
			return nil, malformed(scheme, "parameters are not m=…,t=…,p… in that order")
		}
		n, ok := decimal(v, f.max)
		if !ok || n == 0 {
			return nil, malformed(scheme, "%s is not a number from 1 to %d", f.name, f.max)
		}
		*f.to = uint32(n)
	}
	switch {
	case h.memory < 8*h.threads:
		return nil, malformed(scheme, "m is %d KiB, below argon2's minimum of 8 KiB a lane", h.memory)
	case uint64(h.memory)*uint64(h.time) > maxArgon2MemoryTime:
		return nil, malformed(scheme, "m·t is %d KiB, above our limit of %d", uint64(h.memory)*uint64(h.time), maxArgon2MemoryTime)
	}
	var err error
	if h.salt, err = decodeBytes(phcB64, scheme, "salt", parts[4], minSalt, maxSalt); err != nil {
		return nil, err
	}
	if h.key, err = decodeBytes(phcB64, scheme, "hash", parts[5], minKey, maxKey); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *argon2Hash) matches(password []byte) (bool, error) {
	var got []byte
	if h.id {
		got = argon2.IDKey(password, h.salt, h.time, h.memory, uint8(h.threads), uint32(len(h.key)))
	} else {
		got = argon2.Key(password, h.salt, h.time, h.memory, uint8(h.threads), uint32(len(h.key)))
	}
	return subtle.ConstantTimeCompare(got, h.key) == 1, nil
}

func (h *argon2Hash) String() string {
	scheme := "argon2i"
	if h.id {
		scheme = "argon2id"
	}
	return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s", scheme, argon2.Version, h.memory, h.time, h.threads,
		phcB64.EncodeToString(h.salt), phcB64.EncodeToString(h.key))
}
