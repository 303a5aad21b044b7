package gnupg_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"trustee.dev/trustee/server/gnupg"
)

func FuzzIsEncrypted(f *testing.F) {
	for _, seed := range [][]byte{
		nil,
		{0x85, 0x01, 0x0c, 0x03},                   // old-format PKESK v3
		{0xc1, 0xc0, 0x4c, 0x03},                   // new-format PKESK v3, two-octet length
		{0xc3, 0x0d, 0x04, 0x09, 0x03, 0x08},       // SKESK v4
		{0xd2, 0xe0, 0x01},                         // SEIPD v1, partial length
		{0xa3, 0x01, 0x78, 0x9c},                   // compressed, indeterminate length
		{0xcb, 0x0a, 'b', 0x00, 0, 0, 0, 0, 'h'},   // literal
		{0xa8, 0x03, 'P', 'G', 'P', 0xc1, 0x05, 3}, // marker, then PKESK
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		[]byte("-----BEGIN PGP MESSAGE-----\n"),
		[]byte("keytrustee/\x00\x00\x00"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := gnupg.IsEncrypted(data)
		if len(data) > 512 && got != gnupg.IsEncrypted(data[:512]) {
			t.Errorf("IsEncrypted depends on more than the first 512 bytes")
		}
		if got && len(data) > 0 && data[0]&0x80 == 0 && !strings.Contains(string(data), "-----BEGIN PGP MESSAGE-----") {
			t.Errorf("IsEncrypted(% x) = true without a packet header or armor", data[:min(len(data), 16)])
		}
	})
}

// fuzzKeys is a small, fixed keyring made with go-crypto (not gpg, so that
// fuzzing workers start fast).
var fuzzKeys = sync.OnceValues(func() (openpgp.EntityList, error) {
	var el openpgp.EntityList
	for _, uid := range [][3]string{
		{"Alice Doe", "backup", "alice@example.com"},
		{"Bob Doe", "", "bob@example.com"},
		{"Carol", "", "carol@example.org"},
	} {
		e, err := openpgp.NewEntity(uid[0], uid[1], uid[2], &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
		if err != nil {
			return nil, err
		}
		el = append(el, e)
	}
	return el, nil
})

func FuzzFindRecipient(f *testing.F) {
	el, err := fuzzKeys()
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		"", " ", "Alice", "doe", "alice@example.com", "<BOB@EXAMPLE.COM>", "@example", "=Carol <carol@example.org>",
		"0x", "0x!", "!", "<>", "<", "@", "a@", "@b",
		fmt.Sprintf("%X", el[0].PrimaryKey.Fingerprint),
		fmt.Sprintf("0x%x!", el[1].Subkeys[0].PublicKey.Fingerprint),
		fmt.Sprintf("%016X", el[2].PrimaryKey.KeyId),
		fmt.Sprintf("%08X", uint32(el[2].Subkeys[0].PublicKey.KeyId)),
	} {
		f.Add(seed)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, query string) {
		e, err := gnupg.FindRecipient(el, query, now)
		switch {
		case err == nil:
			found := false
			for _, k := range el {
				found = found || k == e
			}
			if !found {
				t.Fatalf("FindRecipient(%q) returned a key not in the keyring", query)
			}
		case errors.Is(err, gnupg.ErrNoRecipient):
		case strings.Contains(err.Error(), "ambiguous"):
		default:
			t.Fatalf("FindRecipient(%q): unexpected error %v", query, err)
		}
	})
}
