package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"trustee.dev/trustee/server/client"
	"trustee.dev/trustee/server/hsm"
	"trustee.dev/trustee/server/hsm/hsmtest"
	hist "trustee.dev/trustee/test/history"
	"trustee.dev/trustee/test/memberpods"
)

// TestHSMAsUsersRunIt moves a server with deposits onto an HSM (SoftHSM2)
// with the documented commands: keys made inside the token, sensitive and
// never extractable as pkcs11-tool sees them; the state directory's secrets
// sealed; migration and rotation while clients read and write, losing
// nothing; a server without its token refuses to start and says which.
func TestHSMAsUsersRunIt(t *testing.T) {
	root := memberpods.RootDir(t)
	token, pinFile := hsmToken(t, root)
	srv, dir, url, clients, deposits := singleServer(t, root, 500)

	out := kts(t, "keyhsm", "init", "--confdir", dir, "--module", token.Module, "--token-label", token.TokenLabel, "--pin-file", pinFile)
	if strings.Contains(out, token.PIN) {
		t.Fatal("keyhsm init printed the PIN")
	}
	for _, want := range []string{`state key "kts-state" created`, `deposit key "kts-kek-1" created`, "sealed server-key.asc", "500 deposits are still wrapped by the file keyring"} {
		if !strings.Contains(out, want) {
			t.Fatalf("keyhsm init output lacks %q:\n%s", want, out)
		}
	}
	for _, name := range []string{"server-key.asc", "session.key", "deposit-keyring.json"} {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		if !strings.HasPrefix(string(data), "KTS-HSM-SEALED-1 kts-state\n") || strings.Contains(string(data), "PRIVATE KEY") || strings.Contains(string(data), `"keys"`) {
			t.Fatalf("%s is not sealed:\n%.80q", name, data)
		}
	}
	// From outside the server: both keys are secret AES keys that the token
	// keeps sensitive and never lets out.
	listing := pkcs11Tool(t, token.Module, token.TokenLabel, token.PIN, "--list-objects", "--type", "secrkey")
	for _, label := range []string{"kts-state", "kts-kek-1"} {
		m := regexp.MustCompile(`(?s)label:\s+` + label + `\n.*?Access:\s+([^\n]*)`).FindStringSubmatch(listing)
		if m == nil || !strings.Contains(m[1], "sensitive") || !strings.Contains(m[1], "never extractable") || strings.Contains(m[1], ", extractable") {
			t.Fatalf("pkcs11-tool shows %s as:\n%s", label, listing)
		}
	}
	if r := pkcs11ToolRun(token.Module, token.TokenLabel, token.PIN, "--read-object", "--type", "secrkey", "--label", "kts-kek-1"); r == nil {
		t.Fatal("pkcs11-tool read the key's value out of the token")
	}

	// The server takes the HSM at its next start; new deposits are wrapped
	// in the token, the old ones are re-wrapped while clients work.
	srv.stop()
	srv.restart(t)
	load := startLoad(t, clients[0], "during-migrate")
	out = kts(t, "keyhsm", "migrate", "--confdir", dir)
	load.stop(t)
	if !strings.Contains(out, "re-wrapped 500 of 500 deposits") && !regexp.MustCompile(`re-wrapped \d+ of \d+ deposits`).MatchString(out) {
		t.Fatalf("migrate output:\n%s", out)
	}
	check := kts(t, "keyhsm", "check", "--confdir", dir)
	if !regexp.MustCompile(`deposits wrapped by hsm:kts-kek-1 \(current\): \d+`).MatchString(check) || strings.Contains(check, "file keyring") {
		t.Fatalf("after migrate, keyhsm check says:\n%s", check)
	}
	checkDeposits(t, deposits)
	load.check(t)

	// Rotation under concurrent reads and writes.
	load = startLoad(t, clients[1], "during-rotate")
	out = kts(t, "keyhsm", "rotate", "--confdir", dir)
	load.stop(t)
	for _, want := range []string{`created "kts-kek-2"`, "retired hsm:kts-kek-1", "every deposit is wrapped by hsm:kts-kek-2"} {
		if !strings.Contains(out, want) {
			t.Fatalf("rotate output lacks %q:\n%s", want, out)
		}
	}
	checkDeposits(t, deposits)
	load.check(t)

	// The token goes away while the server runs: requests that need it are
	// refused with 503 and write nothing, /readyz fails; when it is back,
	// service resumes by itself.
	// (After a restart no data key is cached: every read needs the token.)
	srv.stop()
	srv.restart(t)
	tokenDir, away := hsmtest.TokenDir(token), filepath.Join(root, "token-away")
	cl, _ := client.Open(clients[2])
	if err := os.Rename(tokenDir, away); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reads refused without the token", func() bool {
		_, err := cl.Get(context.Background(), "deposit-00002")
		return err != nil && strings.Contains(err.Error(), "hsm_unavailable")
	})
	if err := cl.Put(context.Background(), "while-hsm-away", []byte("x")); err == nil || !strings.Contains(err.Error(), "hsm_unavailable") {
		t.Fatalf("a write without the token: %v", err)
	}
	if code := httpStatus(t, url+"/readyz"); code != 503 {
		t.Fatalf("/readyz without the token answers %d", code)
	}
	if err := os.Rename(away, tokenDir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "service back with the token", func() bool {
		_, err := cl.Get(context.Background(), "deposit-00002")
		return err == nil && httpStatus(t, url+"/readyz") == 200
	})
	if _, err := cl.Get(context.Background(), "while-hsm-away"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("a write refused without the token was stored: %v", err)
	}

	// A backup holds sealed secrets and wrapped keys only: it restores where
	// the HSM is, and without it restore refuses and changes nothing.
	archive := strings.TrimSpace(kts(t, "backup", "--confdir", dir, "--cleartext", "--quiet"))
	if data, _ := os.ReadFile(archive); strings.Contains(string(data), "PGP PRIVATE KEY") || strings.Contains(string(data), `"keys"`) {
		t.Fatal("the backup holds the server key or the file keyring in the clear")
	}
	srv.stop()
	if err := os.Rename(tokenDir, away); err != nil {
		t.Fatal(err)
	}
	r := runTool(t, "", "kts", "restore", "--confdir", dir, archive)
	os.Rename(away, tokenDir)
	if r.err == nil || !strings.Contains(r.stderr, "restore needs it") || !strings.Contains(r.stderr, "nothing was changed") {
		t.Fatalf("restore without the HSM: %v %q", r.err, r.stderr)
	}
	if out := kts(t, "restore", "--confdir", dir, archive); !regexp.MustCompile(`\d+ deposits`).MatchString(out) {
		t.Fatalf("restore with the HSM:\n%s", out)
	}
	srv.restart(t)
	checkDeposits(t, deposits)

	// Without its token the server refuses to start, naming module and token.
	srv.stop()
	if err := os.Rename(tokenDir, away); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stderr, err := exec.CommandContext(ctx, filepath.Join(bin, "kts"), "server", "--confdir", dir).CombinedOutput()
	os.Rename(away, tokenDir)
	if err == nil || ctx.Err() != nil || !strings.Contains(string(stderr), token.Module) || !strings.Contains(string(stderr), token.TokenLabel) {
		t.Fatalf("kts server without its token: %v %q", err, stderr)
	}
	srv.restart(t)
	checkDeposits(t, deposits)
}

// load writes new deposits and reads them back while a command runs.
type load struct {
	stopc    chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	written  map[string][]byte
	failures []error
	reads    atomic.Int64
	cl       *client.Client
}

func startLoad(t *testing.T, cdir, prefix string) *load {
	t.Helper()
	cl, err := client.Open(cdir)
	if err != nil {
		t.Fatal(err)
	}
	l := &load{stopc: make(chan struct{}), written: map[string][]byte{}, cl: cl}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-l.stopc:
				return
			default:
			}
			name, data := prefix+"-"+itoa(i), []byte("value "+itoa(i))
			if err := cl.Put(context.Background(), name, data); err != nil {
				l.fail(err)
				return
			}
			l.mu.Lock()
			l.written[name] = data
			l.mu.Unlock()
			if got, err := cl.Get(context.Background(), name); err != nil || string(got) != string(data) {
				l.fail(err)
				return
			}
			l.reads.Add(1)
		}
	}()
	return l
}

func (l *load) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, err)
}

func (l *load) stop(t *testing.T) {
	t.Helper()
	close(l.stopc)
	l.wg.Wait()
	if len(l.failures) > 0 {
		t.Fatalf("a client request failed during the command: %v", l.failures)
	}
	if len(l.written) == 0 {
		t.Fatal("no deposit was written during the command")
	}
}

// check reads back every deposit the load wrote.
func (l *load) check(t *testing.T) {
	t.Helper()
	for name, data := range l.written {
		got, err := l.cl.Get(context.Background(), name)
		if err != nil || string(got) != string(data) {
			t.Fatalf("deposit %s written during the command reads %q, %v", name, got, err)
		}
	}
}

func pkcs11Tool(t *testing.T, module, token, pin string, args ...string) string {
	t.Helper()
	out, err := exec.Command("pkcs11-tool", append([]string{"--module", module, "--token-label", token, "--login", "--pin", pin}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-tool %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func pkcs11ToolRun(module, token, pin string, args ...string) error {
	return exec.Command("pkcs11-tool", append([]string{"--module", module, "--token-label", token, "--login", "--pin", pin}, args...)...).Run()
}

// httpStatus is the status code of a GET.
func httpStatus(t *testing.T, url string) int {
	t.Helper()
	out, _ := exec.Command("curl", "--silent", "--insecure", "--output", "/dev/null", "--write-out", "%{http_code}", url).Output()
	code := 0
	fmt.Sscan(string(out), &code)
	return code
}

// TestHSMOnThePair puts a pair's keys in one token: the active creates
// them, the passive adopts them, and the passive reads deposits wrapped in
// the HSM from its replica.
func TestHSMOnThePair(t *testing.T) {
	root := memberpods.RootDir(t)
	token, pinFile := hsmToken(t, root)
	active, passive := filepath.Join(root, "active"), filepath.Join(root, "passive")
	urls := initPair(t, [2]string{active, passive})
	hsmFlags := []string{"--module", token.Module, "--token-label", token.TokenLabel, "--pin-file", pinFile}

	// The passive cannot go first: it only adopts the active's keys.
	r := runTool(t, "", "kts", append([]string{"keyhsm", "init", "--confdir", passive}, hsmFlags...)...)
	if r.err == nil || !strings.Contains(r.stderr, "uses the active's keys") {
		t.Fatalf("keyhsm init on the passive first: %v %q", r.err, r.stderr)
	}
	kts(t, append([]string{"keyhsm", "init", "--confdir", active}, hsmFlags...)...)
	if out := kts(t, append([]string{"keyhsm", "init", "--confdir", passive}, hsmFlags...)...); !strings.Contains(out, `"kts-kek-1" adopted`) {
		t.Fatalf("keyhsm init on the passive:\n%s", out)
	}
	startServer(t, active)
	startServer(t, passive)
	runTool(t, "", "keytrustee-orgtool", "add", "-n", "acme", "-c", "a@example.com", "--confdir", active)
	runTool(t, "", "keytrustee-orgtool", "set-auth", "-n", "acme", "-s", "", "--confdir", active)
	both := filepath.Join(root, "client")
	kts(t, "client", "register", "--dir", both, "--server", urls[0]+","+urls[1], "--org", "acme", "--skip-ssl-check")
	onlyPassive := hist.ClientWithServers(t, both, filepath.Join(root, "client-passive"), urls[1])
	for i := range 10 {
		putStdin(t, both, "k"+itoa(i), "value "+itoa(i))
		if got := kts(t, "client", "get", "--dir", onlyPassive, "k"+itoa(i)); got != "value "+itoa(i) {
			t.Fatalf("the passive reads %q", got)
		}
	}
	if out := kts(t, "keyhsm", "check", "--confdir", passive); !strings.Contains(out, "wrap/unwrap self-test ok") {
		t.Fatalf("keyhsm check on the passive:\n%s", out)
	}
}

// TestHSMRotateAfterRestoringAnOlderBackup restores a backup taken before
// a rotation onto the same token, which keeps the key that rotation made:
// the next rotation takes a label the token does not hold, and keyhsm
// check lists and self-tests the retired keys that older backups need.
func TestHSMRotateAfterRestoringAnOlderBackup(t *testing.T) {
	root := memberpods.RootDir(t)
	token, pinFile := hsmToken(t, root)
	srv, dir, _, _, deposits := singleServer(t, root, 20)
	kts(t, "keyhsm", "init", "--confdir", dir, "--module", token.Module, "--token-label", token.TokenLabel, "--pin-file", pinFile)
	srv.stop()
	srv.restart(t)
	kts(t, "keyhsm", "migrate", "--confdir", dir)
	archive := strings.TrimSpace(kts(t, "backup", "--confdir", dir, "--cleartext", "--quiet"))
	if out := kts(t, "keyhsm", "rotate", "--confdir", dir); !strings.Contains(out, `created "kts-kek-2"`) {
		t.Fatalf("first rotation:\n%s", out)
	}
	srv.stop()
	kts(t, "restore", "--confdir", dir, archive)
	srv.restart(t)
	out := kts(t, "keyhsm", "rotate", "--confdir", dir)
	for _, want := range []string{`already holds "kts-kek-2"`, `created "kts-kek-3"`, "retired hsm:kts-kek-1", "every deposit is wrapped by hsm:kts-kek-3"} {
		if !strings.Contains(out, want) {
			t.Fatalf("rotation after the restore lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^re-wrapped (\d+) of (\d+) deposits$`).MatchString(out) {
		t.Fatalf("rotation printed no progress:\n%s", out)
	}
	checkDeposits(t, deposits)
	check := kts(t, "keyhsm", "check", "--confdir", dir)
	for _, label := range []string{"kts-kek-1", "kts-kek-3"} {
		if !regexp.MustCompile(`key "` + label + `"\s+\((retired|current)[^\n]*self-test ok`).MatchString(check) {
			t.Fatalf("keyhsm check does not self-test %s:\n%s", label, check)
		}
	}
	if !strings.Contains(check, `key "kts-kek-1"  (retired: older backups need it)`) {
		t.Fatalf("keyhsm check does not say kts-kek-1 is retired:\n%s", check)
	}
}

// TestHSMInitRefusesAPlantedKey: a key someone put in the token under the
// label keyhsm init would adopt, made with a value that can leave the token
// (extractable, not sensitive, as pkcs11-tool makes it when asked), is
// refused before anything is created or changed, naming the label and how
// to get rid of it.
func TestHSMInitRefusesAPlantedKey(t *testing.T) {
	root := memberpods.RootDir(t)
	token, pinFile := hsmToken(t, root)
	_, dir, _, _, _ := singleServer(t, root, 1)
	pkcs11Tool(t, token.Module, token.TokenLabel, token.PIN, "--keygen", "--key-type", "AES:32", "--label", "kts-kek-1", "--extractable")
	stateFiles := func() map[string]string {
		files := map[string]string{}
		for _, name := range []string{"keytrustee.conf", "server-key.asc", "session.key", "deposit-keyring.json"} {
			data, _ := os.ReadFile(filepath.Join(dir, name))
			files[name] = string(data)
		}
		return files
	}
	before := stateFiles()

	r := runTool(t, "", "kts", "keyhsm", "init", "--confdir", dir, "--module", token.Module, "--token-label", token.TokenLabel, "--pin-file", pinFile)
	if r.err == nil || !strings.Contains(r.stderr, `the token's key "kts-kek-1" cannot be adopted`) ||
		!strings.Contains(r.stderr, "extractable") || !strings.Contains(r.stderr, "pkcs11-tool --delete-object") {
		t.Fatalf("keyhsm init with a planted extractable kts-kek-1: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if !maps.Equal(before, stateFiles()) {
		t.Error("the refused keyhsm init changed the configuration or sealed a secret")
	}
	if listing := pkcs11Tool(t, token.Module, token.TokenLabel, token.PIN, "--list-objects", "--type", "secrkey"); strings.Contains(listing, "kts-state") {
		t.Errorf("the refused keyhsm init created the state key:\n%s", listing)
	}
}

// hsmToken is a new SoftHSM2 token and a file in root holding its PIN, as
// --pin-file takes it.
func hsmToken(t *testing.T, root string) (hsm.Config, string) {
	t.Helper()
	token := hsmtest.NewToken(t)
	pinFile := filepath.Join(root, "hsm.pin")
	if err := os.WriteFile(pinFile, []byte(token.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return token, pinFile
}
