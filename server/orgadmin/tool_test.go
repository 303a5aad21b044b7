package orgadmin

import (
	"slices"
	"strings"
	"testing"

	"trustee.dev/trustee/server/store"
)

func TestCodeArg(t *testing.T) {
	tests := []struct {
		name, value string
		given       bool
		stdin       string
		want, err   string
	}{
		{"not given", "", false, "", "", "give the new code with -s SECRET"},
		{"none", "", true, "", "", ""},
		{"on the command line", "s3cret", true, "ignored\n", "s3cret", ""},
		{"from standard input", "-", true, "from-stdin\r\nmore\n", "from-stdin", ""},
		{"standard input without a newline", "-", true, "last", "last", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CodeArg(tt.value, tt.given, strings.NewReader(tt.stdin))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("CodeArg = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestAddAndSetAuthLines(t *testing.T) {
	res := Result{Org: store.Organization{Name: "acme", Contacts: []string{"a@x", "b@x"}}, Created: true, Invited: []string{"a@x"}}
	if got := res.InvitedLines(); !slices.Equal(got, []string{"queued the contact registration mail to a@x"}) {
		t.Errorf("InvitedLines = %q", got)
	}
	if got := res.Summary(); got != "organization acme created with contacts a@x,b@x; set the auth code clients will use with: set-auth -n acme -s CODE" {
		t.Errorf("Summary of a new organization = %q", got)
	}
	res.Created = false
	if got := res.Summary(); got != "organization acme now has contacts a@x,b@x" {
		t.Errorf("Summary of an existing organization = %q", got)
	}
	if got := AuthCodeLine("acme", ""); !strings.Contains(got, "requires no auth code") {
		t.Errorf("AuthCodeLine without a code = %q", got)
	}
	if got := AuthCodeLine("acme", "c"); got != "auth code of organization acme updated" {
		t.Errorf("AuthCodeLine = %q", got)
	}
}
