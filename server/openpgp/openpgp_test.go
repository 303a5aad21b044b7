package openpgp

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

func errorsIs(err, target error) bool { return err != nil && errors.Is(err, target) }

var (
	testKeysMu sync.Mutex
	testKeys   = map[KeyType]*PrivateKey{}
)

// testKey returns a key of type kt made once per test binary: RSA 4096
// generation takes seconds.
func testKey(t testing.TB, kt KeyType) *PrivateKey {
	t.Helper()
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	if k, ok := testKeys[kt]; ok {
		return k
	}
	k, err := Generate(kt, "Test "+string(kt), string(kt)+"@example.org")
	if err != nil {
		t.Fatal(err)
	}
	testKeys[kt] = k
	return k
}

var fprRE = regexp.MustCompile(`^[0-9A-F]{40}$`)

func TestParseKeyType(t *testing.T) {
	for in, want := range map[string]KeyType{"rsa4096": RSA4096, "ED25519": Ed25519, " ed25519 ": Ed25519} {
		if got, err := ParseKeyType(in); err != nil || got != want {
			t.Errorf("ParseKeyType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "rsa", "rsa2048", "dsa"} {
		if _, err := ParseKeyType(in); err == nil {
			t.Errorf("ParseKeyType(%q) succeeded", in)
		}
	}
	if _, err := Generate("rsa1024", "x", ""); err == nil {
		t.Error("Generate accepted an unknown key type")
	}
}

func TestGenerate(t *testing.T) {
	for _, tc := range []struct {
		kt       KeyType
		idPrefix string
		algo     packet.PublicKeyAlgorithm
		subAlgo  packet.PublicKeyAlgorithm
	}{
		{RSA4096, "4096R/", packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSA},
		{Ed25519, "255E/", packet.PubKeyAlgoEdDSA, packet.PubKeyAlgoECDH},
	} {
		t.Run(string(tc.kt), func(t *testing.T) {
			k := testKey(t, tc.kt)
			pub := k.Public()
			if !fprRE.MatchString(pub.Fingerprint()) {
				t.Fatalf("fingerprint %q is not 40 upper-case hex", pub.Fingerprint())
			}
			if want := tc.idPrefix + pub.Fingerprint(); pub.ID() != want {
				t.Errorf("ID = %q, want %q", pub.ID(), want)
			}
			e := pub.entity
			if e.PrimaryKey.PubKeyAlgo != tc.algo {
				t.Errorf("primary algorithm %d, want %d", e.PrimaryKey.PubKeyAlgo, tc.algo)
			}
			self, _ := e.PrimarySelfSignature()
			if !self.FlagSign || !self.FlagCertify {
				t.Error("primary key cannot sign and certify")
			}
			if len(e.Subkeys) != 1 || e.Subkeys[0].PublicKey.PubKeyAlgo != tc.subAlgo || !e.Subkeys[0].Sig.FlagEncryptCommunications {
				t.Errorf("want one %d encryption subkey, got %+v", tc.subAlgo, e.Subkeys)
			}
			if !strings.Contains(e.PrimaryIdentity().Name, "<"+string(tc.kt)+"@example.org>") {
				t.Errorf("user ID %q", e.PrimaryIdentity().Name)
			}
		})
	}
	if _, err := Generate(Ed25519, "bad <name>", ""); err == nil {
		t.Error("Generate accepted a name with angle brackets")
	}
}

func TestRoundTrips(t *testing.T) {
	for _, kt := range []KeyType{Ed25519, RSA4096} {
		t.Run(string(kt), func(t *testing.T) {
			k := testKey(t, kt)
			armored, err := k.Armor()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(armored, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----")) {
				t.Fatalf("private armor starts with %q", armored[:40])
			}
			k2, err := ReadPrivate(armored)
			if err != nil {
				t.Fatal(err)
			}
			if k2.Public().ID() != k.Public().ID() {
				t.Fatalf("read back %s, want %s", k2.Public().ID(), k.Public().ID())
			}

			pubArmor := k.Public().Armor()
			if !bytes.HasPrefix(pubArmor, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
				t.Fatalf("public armor starts with %q", pubArmor[:40])
			}
			p, err := ParsePublic(pubArmor)
			if err != nil {
				t.Fatal(err)
			}
			if p.ID() != k.Public().ID() {
				t.Fatalf("parsed %s, want %s", p.ID(), k.Public().ID())
			}
			if !bytes.Equal(p.Armor(), pubArmor) {
				t.Error("public armor changed on a round trip")
			}
			if _, err := ParsePublic(armored); !errorsIs(err, ErrPrivateKey) {
				t.Fatalf("ParsePublic(private) = %v, want ErrPrivateKey", err)
			}

			msg := []byte("KTS-PGP-V1\nPUT\n/v1/deposits/a%20b\n\n1700000000\nAAAAAAAAAAAAAAAA\n" + strings.Repeat("0", 64))
			for _, signer := range []*PrivateKey{k, k2} {
				sig, err := signer.SignDetached(msg)
				if err != nil {
					t.Fatal(err)
				}
				s, err := readSignature(sig)
				if err != nil {
					t.Fatal(err)
				}
				if s.Hash != crypto.SHA256 || s.SigType != packet.SigTypeBinary {
					t.Errorf("signature hash %v type %d, want SHA-256 binary", s.Hash, s.SigType)
				}
				for _, pk := range []*PublicKey{k.Public(), p} {
					if err := pk.VerifyDetached(msg, sig); err != nil {
						t.Fatalf("VerifyDetached: %v", err)
					}
				}
				var arm bytes.Buffer
				w, _ := armor.Encode(&arm, openpgp.SignatureType, nil)
				w.Write(sig)
				w.Close()
				if err := p.VerifyDetached(msg, arm.Bytes()); err != nil {
					t.Fatalf("VerifyDetached(armored): %v", err)
				}
				bad := bytes.Clone(msg)
				bad[len(bad)-1] = '1'
				if err := p.VerifyDetached(bad, sig); !errorsIs(err, ErrBadSignature) {
					t.Fatalf("tampered message: %v, want ErrBadSignature", err)
				}
				flipped := bytes.Clone(sig)
				flipped[len(flipped)-3] ^= 0x01
				if err := p.VerifyDetached(msg, flipped); !errorsIs(err, ErrBadSignature) {
					t.Fatalf("tampered signature: %v, want ErrBadSignature", err)
				}
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	ed, rsa := testKey(t, Ed25519), testKey(t, RSA4096)
	msg := []byte("message")
	edSig, err := ed.SignDetached(msg)
	if err != nil {
		t.Fatal(err)
	}
	sha1Sig := signSHA1(t, ed, msg)
	textSig := signText(t, ed, msg)
	twoSigs := append(bytes.Clone(edSig), edSig...)
	for _, tc := range []struct {
		name string
		key  *PublicKey
		sig  []byte
		text string
	}{
		{"empty", ed.Public(), nil, "empty"},
		{"garbage", ed.Public(), []byte("not a signature"), "neither"},
		{"binary garbage", ed.Public(), []byte{0x89, 0x01, 0x02}, "cannot parse"},
		{"other key", rsa.Public(), edSig, "not made by a valid signing key"},
		{"sha1", ed.Public(), sha1Sig, "weak"},
		{"two signatures", ed.Public(), twoSigs, "exactly one"},
		{"public key instead", ed.Public(), ed.Public().Armor(), "expected a PGP SIGNATURE"},
		{"huge", ed.Public(), bytes.Repeat([]byte{0x89}, maxSignatureSize+1), "larger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.key.VerifyDetached(msg, tc.sig)
			t.Log(err)
			if !errorsIs(err, ErrBadSignature) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("got %v, want ErrBadSignature mentioning %q", err, tc.text)
			}
		})
	}
	if err := ed.Public().VerifyDetached(msg, textSig); err != nil {
		t.Errorf("text-mode signature: %v", err)
	}
}

func signWith(t *testing.T, k *PrivateKey, msg []byte, cfg *packet.Config) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := openpgp.DetachSign(&buf, k.entity, bytes.NewReader(msg), cfg); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// signSHA1 makes a SHA-1 signature by hand: go-crypto refuses to.
func signSHA1(t *testing.T, k *PrivateKey, msg []byte) []byte {
	t.Helper()
	pk := k.entity.PrimaryKey
	sig := &packet.Signature{
		Version: 4, SigType: packet.SigTypeBinary, PubKeyAlgo: pk.PubKeyAlgo, Hash: crypto.SHA1,
		CreationTime: time.Now(), IssuerKeyId: &pk.KeyId, IssuerFingerprint: pk.Fingerprint,
	}
	h, err := sig.PrepareSign(nil)
	if err != nil {
		t.Fatal(err)
	}
	h.Write(msg)
	if err := sig.Sign(h, k.entity.PrivateKey, &packet.Config{NonDeterministicSignaturesViaNotation: packet.BoolPointer(false)}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := sig.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func signText(t *testing.T, k *PrivateKey, msg []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := openpgp.DetachSignText(&buf, k.entity, bytes.NewReader(msg), nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParsePublicRefuses(t *testing.T) {
	ed := testKey(t, Ed25519)
	good := ed.Public().Armor()
	binary := dearmored(t, good)
	offs := packetOffsets(t, binary) // primary, user ID, self-signature, subkey, binding
	privArmor, err := ed.Armor()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want error
		text string
	}{
		{"empty", nil, ErrInvalidKey, "no key data"},
		{"spaces", []byte("  \n"), ErrInvalidKey, "no key data"},
		{"garbage", []byte("hello, this is not a key"), ErrInvalidKey, "neither"},
		{"binary garbage", []byte{0x99, 0xff, 0xff, 0x01}, ErrInvalidKey, ""},
		{"oversized", append(bytes.Repeat([]byte(" "), MaxPublicKeySize), good...), ErrInvalidKey, "larger than 64 KiB"},
		{"private", privArmor, ErrPrivateKey, "send only the public key"},
		{"private binary", dearmored(t, privArmor), ErrPrivateKey, ""},
		{"signature block", armorOf(t, openpgp.SignatureType, []byte{1, 2, 3}), ErrInvalidKey, "got a PGP SIGNATURE"},
		{"no END line", good[:len(good)-40], ErrInvalidKey, "truncated"},
		{"truncated binary", binary[:len(binary)-10], ErrInvalidKey, ""},
		{"starts with user ID", binary[offs[1]:], ErrInvalidKey, "does not start with a public key"},
		{"trailing garbage", append(bytes.Clone(binary), "junk"...), ErrInvalidKey, ""},
		{"corrupt self-signature", flipByte(binary, offs[3]-2), ErrInvalidKey, "self-signature invalid"},
		{"no user ID", binary[:offs[1]], ErrInvalidKey, "no user ID"},
		{"no subkey signature", binary[:offs[4]], ErrInvalidKey, "subkey"},
		{"empty armor", armorOf(t, openpgp.PublicKeyType, nil), ErrInvalidKey, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePublic(tc.data)
			t.Log(err)
			if !errorsIs(err, tc.want) {
				t.Fatalf("got %v, %v; want %v", p, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not mention %q", err, tc.text)
			}
		})
	}
	if _, err := ParsePublic(binary); err != nil {
		t.Errorf("binary key refused: %v", err)
	}
	if _, err := ParsePublic(append([]byte("leading text\n"), good...)); err != nil {
		t.Errorf("armored key after text refused: %v", err)
	}
}

// TestParsePublicValidity covers expiry, revocation and key sizes with keys
// made by go-crypto directly.
func TestParsePublicValidity(t *testing.T) {
	past := time.Now().Add(-48 * time.Hour)
	expired := entity(t, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return past }, KeyLifetimeSecs: 3600})
	revoked := entity(t, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err := revoked.RevokeKey(packet.KeyRetired, "retired", nil); err != nil {
		t.Fatal(err)
	}
	future := entity(t, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return time.Now().Add(time.Minute) }})
	rsa1024 := entity(t, &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 1024})
	ecdsa := entity(t, &packet.Config{Algorithm: packet.PubKeyAlgoECDSA, Curve: packet.CurveNistP256})

	for _, tc := range []struct {
		name string
		e    *openpgp.Entity
		want error
		text string
	}{
		{"expired", expired, ErrInvalidKey, "expired"},
		{"revoked", revoked, ErrInvalidKey, "revoked"},
		{"rsa1024", rsa1024, ErrWeakKey, "RSA 1024"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePublic(publicArmor(t, tc.e))
			if !errorsIs(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.want, tc.text)
			}
		})
	}
	// A key made by a client whose clock runs a minute ahead is usable.
	if p, err := ParsePublic(publicArmor(t, future)); err != nil {
		t.Errorf("key dated a minute ahead refused: %v", err)
	} else {
		sig := signWith(t, &PrivateKey{entity: future}, []byte("m"), &packet.Config{Time: func() time.Time { return time.Now().Add(time.Minute) }})
		if err := p.VerifyDetached([]byte("m"), sig); err != nil {
			t.Errorf("signature dated a minute ahead refused: %v", err)
		}
	}
	p, err := ParsePublic(publicArmor(t, ecdsa))
	if err != nil {
		t.Fatalf("ECDSA P-256 key refused: %v", err)
	}
	if !strings.HasPrefix(p.ID(), "256E/") {
		t.Errorf("ECDSA ID %s", p.ID())
	}
}

func entity(t *testing.T, cfg *packet.Config) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity("Test", "", "test@example.org", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func publicArmor(t *testing.T, e *openpgp.Entity) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := e.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	return armorOf(t, openpgp.PublicKeyType, buf.Bytes())
}

func armorOf(t *testing.T, typ string, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, typ, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body)
	w.Close()
	return buf.Bytes()
}

func dearmored(t *testing.T, a []byte) []byte {
	t.Helper()
	block, err := armor.Decode(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(block.Body)
	return buf.Bytes()
}

// packetOffsets returns where each packet of b starts, and len(b).
func packetOffsets(t *testing.T, b []byte) []int {
	t.Helper()
	r := bytes.NewReader(b)
	offs := []int{0}
	for r.Len() > 0 {
		if _, err := packet.Read(r); err != nil {
			t.Fatal(err)
		}
		offs = append(offs, len(b)-r.Len())
	}
	return offs
}

func flipByte(b []byte, at int) []byte {
	c := bytes.Clone(b)
	c[at] ^= 0xff
	return c
}

func TestSecretsNotPrinted(t *testing.T) {
	k := testKey(t, Ed25519)
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k)} {
		if strings.Contains(s, "entity") || strings.Contains(s, "0x") || !strings.Contains(s, k.Public().Fingerprint()) {
			t.Errorf("formatting a private key shows %q", s)
		}
	}
}
