package security

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// newEntity makes an Ed25519 key created at created, valid for lifetime
// (0: no expiry).
func newEntity(t testing.TB, created time.Time, lifetime time.Duration) *pgp.Entity {
	t.Helper()
	e, err := pgp.NewEntity("security test client", "", "", &packet.Config{
		Algorithm: packet.PubKeyAlgoEdDSA, DefaultHash: crypto.SHA256,
		Time: func() time.Time { return created }, KeyLifetimeSecs: uint32(lifetime / time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// entityIdentity is a client holding e, whose signatures are dated signAt
// (go-crypto refuses to sign with a key that is expired or revoked now;
// the server must refuse to accept such a key whatever the date says).
func entityIdentity(t testing.TB, e, signer *pgp.Entity, signAt time.Time) *identity {
	t.Helper()
	var pub bytes.Buffer
	w, err := armor.Encode(&pub, pgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return &identity{
		fpr:    strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint)),
		public: pub.Bytes(),
		sign: func(msg []byte) ([]byte, error) {
			var sig bytes.Buffer
			err := pgp.DetachSign(&sig, signer, bytes.NewReader(msg), &packet.Config{DefaultHash: crypto.SHA256, Time: func() time.Time { return signAt }})
			return sig.Bytes(), err
		},
	}
}

// refusedEverywhere sends every deposit route and a session request as id
// (signed) and, when token is set, with the token; each must be answered
// status/code and the client's deposits must stay as they are.
func refusedEverywhere(t *testing.T, s *server, id *identity, token, name string, status int, code string) {
	t.Helper()
	before := s.snapshot(t, id.fpr)
	path := "/v1/deposits/" + name
	for _, r := range []struct{ method, target string }{
		{"GET", path}, {"DELETE", path}, {"PUT", "/v1/deposits/" + randomHex(8)}, {"GET", "/v1/deposits"}, {"POST", "/v1/session"},
	} {
		var body []byte
		if r.method == "PUT" {
			body = []byte("new deposit")
		}
		want(t, "signed "+r.method+" "+r.target, s.signed(t, id, r.method, r.target, body), status, code)
		if token != "" && r.target != "/v1/session" {
			want(t, r.method+" "+r.target+" with an open session", s.withToken(t, token, r.method, r.target, body), status, code)
		}
	}
	if after := s.snapshot(t, id.fpr); after != before {
		t.Errorf("refused requests changed the client or its deposits:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestExpiredKeyRefused: a client's OpenPGP key that expires after it
// registered no longer authenticates anything, although its signatures
// are dated while it was valid; a key already expired, or revoked, cannot
// register.
func TestExpiredKeyRefused(t *testing.T) {
	s := shared(t)
	code := secretText("auth code", "code-")
	org := s.newOrg(t, code)

	// Valid for another 4 to 5 seconds.
	created := time.Now().Add(-60 * time.Second).Truncate(time.Second)
	lifetime := 65 * time.Second
	e := newEntity(t, created, lifetime)
	id := entityIdentity(t, e, e, created.Add(time.Second))
	if a := s.register(t, id, org, code); a.status != http.StatusCreated {
		t.Fatalf("registering a key that is valid until %s, at %s: %s", created.Add(lifetime).Format(time.StampMilli), time.Now().Format(time.StampMilli), a)
	}
	name := secretText("deposit name", "name-")
	s.put(t, id, name, []byte(secretText("deposit", "plaintext-")))

	// Meanwhile: keys that are expired or revoked when they register.
	old := time.Now().Add(-2 * time.Hour)
	expired := newEntity(t, old, time.Hour)
	want(t, "registering an expired key", s.register(t, entityIdentity(t, expired, expired, old.Add(time.Minute)), org, code), http.StatusBadRequest, "invalid_key")
	revoked := newEntity(t, time.Now().Add(-time.Minute), 0)
	signer := *revoked // a copy that signs as the key did before its revocation
	if err := revoked.RevokeKey(packet.KeyCompromised, "stolen", nil); err != nil {
		t.Fatal(err)
	}
	want(t, "registering a revoked key", s.register(t, entityIdentity(t, revoked, &signer, time.Now()), org, code), http.StatusBadRequest, "invalid_key")

	// The server checks the key's validity at its own clock, second by
	// second: wait until the key's last second has passed.
	time.Sleep(time.Until(created.Add(lifetime + 1100*time.Millisecond)))
	refusedEverywhere(t, s, id, "", name, http.StatusUnauthorized, "bad_signature")
}

// TestDisabledClientRefused: once an administrator disables a client
// (keytrustee-orgtool disable-client), neither its signature nor its open
// session reaches anything; its deposits stay. A pending client (wrong auth
// code) is refused the same way, and an unknown key is not a client.
func TestDisabledClientRefused(t *testing.T) {
	s := shared(t)
	code := secretText("auth code", "code-")
	org := s.newOrg(t, code)
	id := s.activeClient(t, org, code)
	name := secretText("deposit name", "name-")
	data := []byte(secretText("deposit", "plaintext-"))
	s.put(t, id, name, data)
	token := s.session(t, id)
	s.get(t, id, name, data) // the server knows the deposit (and caches it)

	s.mustKTS(t, "", "org", "disable-client", "--fingerprint", id.fpr)
	// The servers learn of the change through a PostgreSQL notification,
	// moments after it commits.
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := s.withToken(t, token, "GET", "/v1/deposits/"+name, nil)
		if a.status == http.StatusForbidden {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after disable-client, the session still reads: %s", a)
		}
		time.Sleep(20 * time.Millisecond)
	}
	refusedEverywhere(t, s, id, token, name, http.StatusForbidden, "client_not_active")

	pending := newIdentity(t)
	if a := s.register(t, pending, org, "not-the-code"); a.status != http.StatusCreated || !strings.Contains(string(a.body), `"state": "pending"`) {
		t.Fatalf("registering with a wrong code: %s", a)
	}
	refusedEverywhere(t, s, pending, "", name, http.StatusForbidden, "client_not_active")
	refusedEverywhere(t, s, newIdentity(t), "", name, http.StatusUnauthorized, "unknown_client")
}

// TestExpiredOrganizationRefused: the clients of an organization that has
// expired (keytrustee-orgtool set-expiration, or the admin API's retire) are
// refused with 403 organization_expired, and no client can register with
// it, even with its auth code. Its deposits stay.
func TestExpiredOrganizationRefused(t *testing.T) {
	s := shared(t)
	code := secretText("auth code", "code-")
	org := s.newOrg(t, code)
	id := s.activeClient(t, org, code)
	name := secretText("deposit name", "name-")
	s.put(t, id, name, []byte(secretText("deposit", "plaintext-")))

	s.mustKTS(t, "", "org", "set-expiration", "-n", org, "-e", time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
	refusedEverywhere(t, s, id, "", name, http.StatusForbidden, "organization_expired")
	want(t, "registering with an expired organization", s.register(t, newIdentity(t), org, code), http.StatusForbidden, "organization_expired")
}
