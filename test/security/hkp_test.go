package security

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestHKPSearchDoesNotEnumerateClients: the public HKP search (op=index,
// what gpg --search-keys sends) finds a registered client's key by its full
// fingerprint only, as op=get does: not by its key ID, nor by the text of
// its user ID, nor by any text, so the port that answers without
// authentication (and over plain HTTP) does not list who is registered.
func TestHKPSearchDoesNotEnumerateClients(t *testing.T) {
	s := shared(t)
	code := secretText("auth code", "code-hkp-")
	client := s.activeClient(t, s.newOrg(t, code), code)
	lookup := func(search string) answer {
		return s.send(t, "GET", "/pks/lookup?op=index&options=mr&search="+url.QueryEscape(search), "", nil)
	}
	a := lookup("0x" + client.fpr)
	want(t, "search by full fingerprint", a, http.StatusOK, "")
	if !strings.Contains(string(a.body), "pub:"+client.fpr+":") {
		t.Errorf("search by full fingerprint: %s", a.body)
	}
	for _, search := range []string{"0x" + client.fpr[24:], "0x" + client.fpr[32:], "security test client", "client", "test", "*"} {
		a := lookup(search)
		want(t, "search by "+search, a, http.StatusNotFound, "not_found")
		if strings.Contains(string(a.body), client.fpr) {
			t.Errorf("search by %q named the client:\n%s", search, a.body)
		}
	}
}
