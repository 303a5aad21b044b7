package v1alpha1

import (
	"encoding/json"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/randfill"
)

// filler fills objects with random values that survive a JSON round trip.
func filler(seed int64) *randfill.Filler {
	return randfill.NewWithSeed(seed).NilChance(0.2).NumElements(1, 3).Funcs(
		func(q *resource.Quantity, c randfill.Continue) {
			*q = *resource.NewQuantity(c.Int63n(1<<40), resource.BinarySI)
		},
		func(tm *metav1.Time, c randfill.Continue) {
			*tm = metav1.Unix(c.Int63n(1<<32), 0).Rfc3339Copy()
		},
		func(f *metav1.FieldsV1, c randfill.Continue) {
			*f = metav1.FieldsV1{Raw: []byte(`{"f:spec":{}}`)}
		},
	)
}

// TestDeepCopyRoundTrip fills every kind with random values and checks that
// the generated DeepCopy is equal to the original and shares no memory with
// it, and that the JSON encoding round-trips.
func TestDeepCopyRoundTrip(t *testing.T) {
	for kind, empty := range kinds {
		t.Run(kind, func(t *testing.T) {
			typ := reflect.TypeOf(empty).Elem()
			for seed := range int64(50) {
				f := filler(seed)
				orig := reflect.New(typ).Interface().(runtime.Object)
				f.Fill(orig)
				before := mustJSON(t, orig)

				cp := orig.DeepCopyObject()
				if !reflect.DeepEqual(orig, cp) {
					t.Fatalf("seed %d: DeepCopyObject differs from the original", seed)
				}
				// Filling the copy again reuses its pointers: any shared with
				// the original would change the original too.
				f.Fill(cp)
				if after := mustJSON(t, orig); after != before {
					t.Fatalf("seed %d: changing the copy changed the original:\nbefore %s\nafter  %s", seed, before, after)
				}

				back := reflect.New(typ).Interface().(runtime.Object)
				if err := json.Unmarshal([]byte(before), back); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				if !equality.Semantic.DeepEqual(orig, back) {
					t.Fatalf("seed %d: JSON round trip changed the object:\n%s\n%s", seed, before, mustJSON(t, back))
				}
			}
		})
	}
}

// TestDeepCopyFixtures copies hand-built objects with every optional part
// set, and checks that changing the copy's nested values leaves the original
// alone.
func TestDeepCopyFixtures(t *testing.T) {
	k := fullKTS()
	c := k.DeepCopy()
	*c.Spec.HighAvailability.Enabled = false
	c.Spec.HSM.PINSecretRef.Name = "other"
	*c.Spec.Storage.StorageClassName = "slow"
	c.Spec.Scheduling.NodeSelector["disk"] = "hdd"
	c.Spec.Scheduling.Tolerations[0].Key = "other"
	c.Spec.PostgreSQL.Parameters[0].Value = "1GB"
	c.Status.Conditions[0].Status = metav1.ConditionFalse
	c.Status.Endpoints.ReadWrite = ""
	if !equality.Semantic.DeepEqual(k, fullKTS()) {
		t.Errorf("changing a copy of a KeyTrusteeServer changed the original")
	}

	o := newOrg("acme", withClients([]string{"4EDC46882386C827E20DEEA2D850ACA33BEDB0D1"}, nil))
	oc := o.DeepCopy()
	oc.Spec.Contacts[0] = "other@example.com"
	oc.Spec.Clients.Enable[0] = "0000000000000000000000000000000000000000"
	if o.Spec.Contacts[0] != "admin@example.com" || o.Spec.Clients.Enable[0] != "4EDC46882386C827E20DEEA2D850ACA33BEDB0D1" {
		t.Errorf("changing a copy of an Organization changed the original")
	}

	b := newBackup("nightly", withRoll(10))
	bc := b.DeepCopy()
	*bc.Spec.Roll = 1
	bc.Spec.GPGRecipient.ConfigMapKeyRef.Key = "other"
	if *b.Spec.Roll != 10 || b.Spec.GPGRecipient.ConfigMapKeyRef.Key != "key.asc" {
		t.Errorf("changing a copy of a BackupSchedule changed the original")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
