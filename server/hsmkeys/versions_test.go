package hsmkeys_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsmkeys"
	"trustee.dev/trustee/server/store"
)

func TestScanVersions(t *testing.T) {
	for _, tc := range []struct {
		name string
		keks []store.KEK
		want string
	}{
		{"nothing recorded", nil, "{Current: Retiring:false Next:1 Keys:[]}"},
		{"the file keyring only", []store.KEK{{ID: "file-1", State: "current", Deposits: 3}}, "{Current:file-1 Retiring:false Next:1 Keys:[]}"},
		{"one HSM version", []store.KEK{{ID: "file-1", Deposits: 2}, {ID: "hsm:kts-kek-1", State: "current"}},
			"{Current:hsm:kts-kek-1 Retiring:false Next:2 Keys:[{Label:kts-kek-1 Use:current}]}"},
		{"an unfinished rotation", []store.KEK{{ID: "hsm:kts-kek-1", State: "retiring", Deposits: 4}, {ID: "hsm:kts-kek-2", State: "current"}},
			"{Current:hsm:kts-kek-2 Retiring:true Next:3 Keys:[{Label:kts-kek-1 Use:retiring} {Label:kts-kek-2 Use:current}]}"},
		{"retired versions and a key only deposits name", []store.KEK{{ID: "hsm:kts-kek-5", State: "retired"}, {ID: "hsm:kts-kek-9", Deposits: 1},
			{ID: "hsm:kts-kek-6", State: "current"}},
			"{Current:hsm:kts-kek-6 Retiring:false Next:10 Keys:[{Label:kts-kek-5 Use:retired: older backups need it} {Label:kts-kek-9 Use:wraps deposits} {Label:kts-kek-6 Use:current}]}"},
		{"an adopted label takes no version", []store.KEK{{ID: "hsm:my-key", State: "current"}}, "{Current:hsm:my-key Retiring:false Next:1 Keys:[{Label:my-key Use:current}]}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := hsmkeys.ScanVersions(tc.keks)
			if v.Keys == nil {
				v.Keys = []hsmkeys.CheckedKey{}
			}
			if got := fmt.Sprintf("%+v", v); got != tc.want {
				t.Errorf("ScanVersions = %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestInitLabels(t *testing.T) {
	seal := config.Config{HSMSealState: true, HSMStateKey: "kts-state"}
	for _, tc := range []struct {
		name               string
		cfg                config.Config
		current, requested string
		wantKey            string
		wantLabels         string
	}{
		{"first init seals the state", seal, "file-1", "kts-kek-1", "kts-kek-1", "[kts-kek-1 kts-state]"},
		{"first init, state kept unsealed", config.Config{}, "file-1", "kts-kek-1", "kts-kek-1", "[kts-kek-1]"},
		{"a chosen label", seal, "", "my-key", "my-key", "[my-key kts-state]"},
		{"again: what wraps now is adopted", seal, "hsm:kts-kek-3", "kts-kek-1", "kts-kek-3", "[kts-kek-3 kts-state]"},
		{"a passive reads no current key", seal, "", "kts-kek-1", "kts-kek-1", "[kts-kek-1 kts-state]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, labels := hsmkeys.InitLabels(tc.cfg, tc.current, tc.requested)
			if key != tc.wantKey || fmt.Sprint(labels) != tc.wantLabels {
				t.Errorf("InitLabels = %q, %v; want %q, %s", key, labels, tc.wantKey, tc.wantLabels)
			}
		})
	}
}

// fakeKEKs is the key versions of an active's database, in memory.
type fakeKEKs struct {
	current string
	left    int64
	err     error
	made    []string
}

func (f *fakeKEKs) CurrentKEK(context.Context) (string, error) { return f.current, f.err }
func (f *fakeKEKs) MakeCurrentKEK(_ context.Context, id string) error {
	f.made = append(f.made, id)
	f.current = id
	return nil
}
func (f *fakeKEKs) CountNotCurrent(context.Context, string) (int64, error) { return f.left, nil }

func TestInitAdoptsCreatesAndSeals(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		role      string
		seal      bool
		db        *fakeKEKs
		planted   []string // keys the token holds before
		wantOut   []string
		wantMade  []string
		wantErr   string
		wantFiles bool // the state files end up sealed
	}{
		{name: "first init of an active", seal: true, db: &fakeKEKs{current: "file-1", left: 5},
			wantOut: []string{`state key "kts-state" created in the token`, `deposit key "kts-kek-1" created in the token`,
				"sealed server-key.asc with the state key", `new deposits are wrapped by HSM key "kts-kek-1"`, "5 deposits are still wrapped by the file keyring"},
			wantMade: []string{"hsm:kts-kek-1"}, wantFiles: true},
		{name: "again after a rotation adopts what wraps", seal: true, db: &fakeKEKs{current: "hsm:kts-kek-2"}, planted: []string{"kts-state", "kts-kek-2"},
			wantOut:  []string{`state key "kts-state" adopted (it was in the token)`, `deposit key "kts-kek-2" adopted (it was in the token)`},
			wantMade: []string{"hsm:kts-kek-2"}, wantFiles: true},
		{name: "state left unsealed", db: &fakeKEKs{current: "file-1"},
			wantOut: []string{`deposit key "kts-kek-1" created in the token`, "HSM_SEAL_STATE is false"}, wantMade: []string{"hsm:kts-kek-1"}},
		{name: "a passive adopts the active's keys", role: config.RolePassive, seal: true, planted: []string{"kts-state", "kts-kek-1"},
			wantOut: []string{"this passive uses the active's keys"}, wantFiles: true},
		{name: "a passive never creates", role: config.RolePassive, seal: true, wantErr: "a passive uses the active's keys"},
		{name: "the database fails", db: &fakeKEKs{err: errors.New("database down")}, wantErr: "database down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, _ := openToken(t)
			for _, label := range tc.planted {
				if _, err := tok.GenerateKey(label); err != nil {
					t.Fatal(err)
				}
			}
			dir := t.TempDir()
			cfg := config.Default("kts01")
			cfg.Role, cfg.HSMSealState, cfg.HSMStateKey = tc.role, tc.seal, "kts-state"
			if tc.role == "" {
				cfg.Role = config.RoleActive
			} else {
				cfg.ActiveURL, cfg.ActiveCA, cfg.ActiveDB, cfg.StandbyName = "https://kts01.example.com:11371", "active-ca.pem", "kts01.example.com:11381", "kts_passive"
			}
			for _, name := range hsmkeys.SealedFiles(cfg) {
				if err := os.WriteFile(cfg.Path(dir, name), []byte("secret of "+name), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var db hsmkeys.KEKStore
			if tc.db != nil {
				db = tc.db
			}
			var out bytes.Buffer
			err := hsmkeys.Init(ctx, &out, dir, cfg, tok, db, "kts-kek-1")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Init = %v; want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Init: %v\n%s", err, out.String())
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("the output lacks %q:\n%s", w, out.String())
				}
			}
			if tc.db != nil && fmt.Sprint(tc.db.made) != fmt.Sprint(tc.wantMade) {
				t.Errorf("made current %v; want %v", tc.db.made, tc.wantMade)
			}
			if _, err := config.Load(dir); err != nil {
				t.Errorf("the configuration was not saved: %v", err)
			}
			for _, name := range hsmkeys.SealedFiles(cfg) {
				data, _ := os.ReadFile(filepath.Join(dir, name))
				if hsmkeys.IsSealed(data) != tc.wantFiles {
					t.Errorf("%s sealed = %v; want %v", name, hsmkeys.IsSealed(data), tc.wantFiles)
				}
			}
		})
	}
}
