package v1alpha1

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
)

// kinds are the kinds of this API with an empty value of each.
var kinds = map[string]runtime.Object{
	"KeyTrusteeServer":     &KeyTrusteeServer{},
	"KeyTrusteeServerList": &KeyTrusteeServerList{},
	"Organization":         &Organization{},
	"OrganizationList":     &OrganizationList{},
	"BackupSchedule":       &BackupSchedule{},
	"BackupScheduleList":   &BackupScheduleList{},
}

func TestAddToSchemeRegistersKinds(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if GroupVersion.Group != "trustee.dev" || GroupVersion.Version != "v1alpha1" {
		t.Errorf("GroupVersion = %s, want trustee.dev/v1alpha1", GroupVersion)
	}
	for kind, obj := range kinds {
		t.Run(kind, func(t *testing.T) {
			gvks, _, err := s.ObjectKinds(obj)
			if err != nil {
				t.Fatal(err)
			}
			if want := GroupVersion.WithKind(kind); len(gvks) != 1 || gvks[0] != want {
				t.Errorf("ObjectKinds = %v, want [%v]", gvks, want)
			}
			made, err := s.New(GroupVersion.WithKind(kind))
			if err != nil {
				t.Fatal(err)
			}
			if reflect.TypeOf(made) != reflect.TypeOf(obj) {
				t.Errorf("New(%s) made a %T, want %T", kind, made, obj)
			}
		})
	}
	// The group version also knows meta/v1's options and watch events, as a
	// client needs for list and watch calls.
	for _, kind := range []string{"ListOptions", "WatchEvent", "DeleteOptions"} {
		if !s.Recognizes(GroupVersion.WithKind(kind)) {
			t.Errorf("the scheme does not recognize %s in %s", kind, GroupVersion)
		}
	}
}

func TestHighAvailabilityEnabled(t *testing.T) {
	for _, tc := range []struct {
		name string
		kts  *KeyTrusteeServer
		want bool
	}{
		{"unset means the API default, on", newKTS("a"), true},
		{"on", newKTS("a", withHA(true)), true},
		{"off", newKTS("a", withHA(false)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.kts.HighAvailabilityEnabled(); got != tc.want {
				t.Errorf("HighAvailabilityEnabled() = %v, want %v", got, tc.want)
			}
		})
	}
}
