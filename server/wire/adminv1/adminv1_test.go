package adminv1

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestAuthCodeNotPrinted(t *testing.T) {
	code := "hunter2"
	b := AuthCodeRequest{AuthCode: &code}
	for _, s := range []string{fmt.Sprint(b), fmt.Sprintf("%v %+v %#v %s", b, b, b, b), fmt.Sprint(&b)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("printed: %s", s)
		}
	}
	// On the wire, the code is sent as it is.
	if out, err := json.Marshal(b); err != nil || string(out) != `{"auth_code":"hunter2"}` {
		t.Errorf("json: %s, %v", out, err)
	}
}

func TestExpired(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	for _, c := range []struct {
		name    string
		expires *time.Time
		want    bool
	}{
		{"never", nil, false},
		{"later", at(time.Second), false},
		{"now", at(0), true},
		{"earlier", at(-time.Hour), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := Organization{Expires: c.expires}
			if got := o.Expired(now); got != c.want {
				t.Errorf("Expired = %v, want %v", got, c.want)
			}
		})
	}
}
