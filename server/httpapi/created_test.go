package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"trustee.dev/trustee/server/openpgp/openpgptest"
)

// A PUT answers the deposit's creation time exactly as stored: the list
// shows the same "created", to the microsecond, through the batcher and
// through the store alone.
func TestPutAnswersTheCreatedTimeTheListShows(t *testing.T) {
	for _, cached := range []bool{true, false} {
		t.Run(fmt.Sprintf("batched=%v", cached), func(t *testing.T) {
			e := newEnvWith(t, cached)
			if a := e.register(0, "open", ""); a.status != http.StatusCreated {
				t.Fatalf("register: %d %s", a.status, a.body)
			}
			k := openpgptest.Key(t, 0)
			put := map[string]string{}
			for i := range 3 {
				name := fmt.Sprint("created-", i)
				a := e.do("PUT", "/v1/deposits/"+name, []byte("x"), k, "")
				if a.status != http.StatusCreated {
					t.Fatalf("put: %d %s", a.status, a.body)
				}
				var d struct{ Name, Created string }
				if err := json.Unmarshal(a.body, &d); err != nil {
					t.Fatal(err)
				}
				put[d.Name] = d.Created
			}
			a := e.do("GET", "/v1/deposits", nil, k, "")
			if a.status != http.StatusOK {
				t.Fatalf("list: %d %s", a.status, a.body)
			}
			var list struct {
				Deposits []struct{ Name, Created string }
			}
			if err := json.Unmarshal(a.body, &list); err != nil {
				t.Fatal(err)
			}
			if len(list.Deposits) != len(put) {
				t.Fatalf("listed %d deposits, put %d", len(list.Deposits), len(put))
			}
			for _, d := range list.Deposits {
				if put[d.Name] != d.Created {
					t.Errorf("%s: the PUT answered created %q, the list shows %q", d.Name, put[d.Name], d.Created)
				}
			}
		})
	}
}
