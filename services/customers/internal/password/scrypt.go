package password

import (
	"crypto/subtle"
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"golang.org/x/crypto/scrypt"
)

// scryptHash is an scrypt hash, as passlib writes it (PHC style, N as its
// log) or as Django does (N itself, the salt as text).
type scryptHash struct {
	django    bool
	logN      int
	r, p      int
	salt, key []byte
}

// parseScrypt parses passlib's $scrypt$ln=…,r=…,p=…$salt$hash.
func parseScrypt(s string) (parsed, error) {
	const scheme = "scrypt"
	parts := strings.Split(s, "$")
	if len(parts) != 5 {
		return nil, malformed(scheme, "want $scrypt$ln=…,r=…,p=…$salt$hash, got %d fields", len(parts)-1)
	}
	params := strings.Split(parts[2], ",")
	if len(params) != 3 {
		return nil, malformed(scheme, "parameters are not ln=…,r=…,p=…")
	}
	h := &scryptHash{}
	fields := []struct {
		name string
		max  uint64
		to   *int
	}{{"ln", maxScryptLogN, &h.logN}, {"r", maxScryptR, &h.r}, {"p", maxScryptP, &h.p}}
	for i, f := range fields {
		v, ok := strings.CutPrefix(params[i], f.name+"=")
		if !ok {
			return nil, malformed(scheme, "parameters are not ln=…,r=…,p=… in that order")
		}
		n, ok := decimal(v, f.max)
		if !ok || n == 0 {
			return nil, malformed(scheme, "%s is not a number from 1 to %d", f.name, f.max)
		}
		*f.to = int(n)
	}
	var err error
	if h.salt, err = decodeBytes(phcB64, scheme, "salt", parts[3], minSalt, maxSalt); err != nil {
		return nil, err
	}
	if h.key, err = decodeBytes(phcB64, scheme, "hash", parts[4], minKey, maxKey); err != nil {
		return nil, err
	}
	return h, h.checkCost(scheme)
}

// parseDjangoScrypt parses Django's scrypt$N$salt$r$p$hash.
func parseDjangoScrypt(s string) (parsed, error) {
	const scheme = "django scrypt"
	parts := strings.Split(s, "$")
	if len(parts) != 6 {
		return nil, malformed(scheme, "want scrypt$N$salt$r$p$hash, got %d fields", len(parts))
	}
	h := &scryptHash{django: true}
	n, ok := decimal(parts[1], 1<<maxScryptLogN)
	if !ok || n < 2 || n&(n-1) != 0 {
		return nil, malformed(scheme, "N is not a power of 2 from 2 to 2^%d", maxScryptLogN)
	}
	h.logN = bits.TrailingZeros64(n)
	for _, f := range []struct {
		name, v string
		max     uint64
		to      *int
	}{{"r", parts[3], maxScryptR, &h.r}, {"p", parts[4], maxScryptP, &h.p}} {
		n, ok := decimal(f.v, f.max)
		if !ok || n == 0 {
			return nil, malformed(scheme, "%s is not a number from 1 to %d", f.name, f.max)
		}
		*f.to = int(n)
	}
	if err := djangoSalt(scheme, parts[2]); err != nil {
		return nil, err
	}
	h.salt = []byte(parts[2])
	var err error
	if h.key, err = decodeBytes(djangoB64, scheme, "hash", parts[5], minKey, maxKey); err != nil {
		return nil, err
	}
	return h, h.checkCost(scheme)
}

// checkCost bounds the memory (128·N·r bytes) and the work (that times p).
func (h *scryptHash) checkCost(scheme string) error {
	nr := uint64(h.r) << h.logN
	switch {
	case nr > maxScryptNR:
		return malformed(scheme, "N·r is 2^%d·%d, above our limit of 2^21 (256 MiB)", h.logN, h.r)
	case nr*uint64(h.p) > maxScryptNRP:
		return malformed(scheme, "N·r·p is 2^%d·%d·%d, above our limit of 2^22", h.logN, h.r, h.p)
	}
	return nil
}

func (h *scryptHash) matches(password []byte) (bool, error) {
	got, err := scrypt.Key(password, h.salt, 1<<h.logN, h.r, h.p, len(h.key))
	if err != nil {
		return false, fmt.Errorf("password: scrypt: %w", err)
	}
	return subtle.ConstantTimeCompare(got, h.key) == 1, nil
}

func (h *scryptHash) String() string {
	if h.django {
		return "scrypt$" + strconv.Itoa(1<<h.logN) + "$" + string(h.salt) + "$" + strconv.Itoa(h.r) + "$" +
			strconv.Itoa(h.p) + "$" + djangoB64.EncodeToString(h.key)
	}
	return fmt.Sprintf("$scrypt$ln=%d,r=%d,p=%d$%s$%s", h.logN, h.r, h.p, phcB64.EncodeToString(h.salt), phcB64.EncodeToString(h.key))
}
