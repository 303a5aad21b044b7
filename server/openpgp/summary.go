package openpgp

import (
	"sort"
	"time"
)

// Summary is what a key server's index shows of a key.
type Summary struct {
	Fingerprint string
	Algorithm   int // the OpenPGP public-key algorithm number (RFC 4880 9.1)
	Bits        int // as GnuPG shows it: the modulus size for RSA, the curve size otherwise
	Created     time.Time
	Expires     time.Time // the zero time: never
	Revoked     bool
	Expired     bool
	UserIDs     []string // the primary user ID first, then the others sorted
}

// Summary returns the key's summary at time now.
func (p *PublicKey) Summary(now time.Time) Summary {
	e := p.entity
	s := Summary{
		Fingerprint: p.fpr,
		Algorithm:   int(e.PrimaryKey.PubKeyAlgo),
		Bits:        bitLength(e.PrimaryKey),
		Created:     e.PrimaryKey.CreationTime,
		Revoked:     e.Revoked(now),
	}
	self, primary := e.PrimarySelfSignature()
	if self != nil && self.KeyLifetimeSecs != nil && *self.KeyLifetimeSecs != 0 {
		s.Expires = e.PrimaryKey.CreationTime.Add(time.Duration(*self.KeyLifetimeSecs) * time.Second)
		s.Expired = now.After(s.Expires)
	}
	var others []string
	for name, id := range e.Identities {
		if id == primary {
			s.UserIDs = append(s.UserIDs, name)
		} else {
			others = append(others, name)
		}
	}
	sort.Strings(others)
	s.UserIDs = append(s.UserIDs, others...)
	return s
}
