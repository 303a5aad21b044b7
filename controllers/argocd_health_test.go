package controllers

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// argoHealth runs config/argocd/health.lua as Argo CD does (obj is the
// object, the script returns {status, message}) with Lua 5.1 and
// lua-cjson (hack/install-test-deps.sh installs them).
func argoHealth(t *testing.T, obj any) (status, message string) {
	t.Helper()
	doc, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("../config/argocd/health.lua")
	if err != nil {
		t.Fatal(err)
	}
	run := fmt.Sprintf(`obj = require("cjson").decode(io.read("*a")); local hs = dofile(%q); io.write(hs.status, "\n", hs.message)`, script)
	cmd := exec.Command("lua5.1", "-e", run)
	cmd.Stdin = strings.NewReader(string(doc))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("lua5.1 %s: %v\n%s", script, err, out)
	}
	status, message, _ = strings.Cut(string(out), "\n")
	return status, message
}

// healthCases are objects of the three kinds with the statuses the
// operator writes (each made by the functions that make the real one), and
// the health Argo CD's script gives them.
func healthCases() []healthCase {
	ok := podObservation{Name: "kts-a-0", Exists: true, Ready: true}
	passiveOK := podObservation{Name: "kts-b-0", Exists: true, Ready: true}
	inSync := &replicationObservation{Attached: true, SyncState: "sync"}
	cert := condition{OK: true, Reason: "Issued", Message: "the certificate is valid"}
	server := func(gen, observed int64, o serverObservation) *trusteev1.KeyTrusteeServer {
		k := &trusteev1.KeyTrusteeServer{TypeMeta: metav1.TypeMeta{APIVersion: "trustee.dev/v1alpha1", Kind: "KeyTrusteeServer"},
			ObjectMeta: metav1.ObjectMeta{Name: "kts", Generation: gen}}
		if observed > 0 {
			o.Generation = observed
			k.Status.ObservedGeneration = observed
			k.Status.Conditions = serverConditions(o)
		}
		return k
	}
	now := metav1.Now()
	schedule := func(results ...backupResult) *trusteev1.BackupSchedule {
		bs := &trusteev1.BackupSchedule{TypeMeta: metav1.TypeMeta{APIVersion: "trustee.dev/v1alpha1", Kind: "BackupSchedule"},
			ObjectMeta: metav1.ObjectMeta{Name: "nightly", Generation: 1}}
		bs.Status = backupStatus(bs, &now, results)
		return bs
	}
	return []healthCase{
		{"a server the operator has not seen", server(1, 0, serverObservation{}), "Progressing", "generation 1"},
		{"a server whose change is not acted on yet", server(3, 2, serverObservation{HA: true, Certificate: cert, Active: ok, Passive: passiveOK, Replication: inSync}),
			"Progressing", "generation 3"},
		{"a pair in sync", server(2, 2, serverObservation{HA: true, Certificate: cert, Active: ok, Passive: passiveOK, Replication: inSync}),
			"Healthy", "both members answer"},
		{"a pair without its passive", server(2, 2, serverObservation{HA: true, Certificate: cert, Active: ok, Passive: podObservation{Name: "kts-b-0"}}),
			"Degraded", "not ready: [PassiveReady Replicating]"},
		{"a single server", server(1, 1, serverObservation{Certificate: cert, Active: ok}), "Healthy", "the server answers"},
		{"a backup schedule with no backup yet", schedule(), "Healthy", ""},
		{"a backup schedule whose last backup worked", schedule(backupResult{Job: "nightly-1", Started: now, Finished: &now, Succeeded: true, Message: "kts-1.tar.gpg"}),
			"Healthy", ""},
		{"a backup schedule whose last backup failed", schedule(backupResult{Job: "nightly-2", Started: now, Finished: &now, Message: "pg_dump: connection refused"}),
			"Degraded", "the last backup failed: "},
		{"an organization waiting for its server", &trusteev1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "acme", Generation: 1},
			Status: trusteev1.OrganizationStatus{ObservedGeneration: 1, Conditions: []metav1.Condition{{Type: trusteev1.ConditionReady,
				Status: metav1.ConditionFalse, Reason: trusteev1.ReasonServerNotReady, Message: "waiting for the active server of kts"}}}},
			"Progressing", "waiting for the active server of kts"},
	}
}

type healthCase struct {
	name        string
	obj         any
	wantStatus  string
	wantMessage string
}

// The health script reads the statuses the operator writes.
func TestArgoCDHealth(t *testing.T) {
	for _, tc := range healthCases() {
		t.Run(tc.name, func(t *testing.T) {
			status, message := argoHealth(t, tc.obj)
			if status != tc.wantStatus || !strings.Contains(message, tc.wantMessage) {
				t.Errorf("health %s %q, want %s with %q", status, message, tc.wantStatus, tc.wantMessage)
			}
		})
	}
}
