package mail_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

func armorDecode(t *testing.T, data []byte) io.Reader {
	t.Helper()
	b, err := armor.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return b.Body
}
