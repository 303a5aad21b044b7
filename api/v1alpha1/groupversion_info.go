// Package v1alpha1 holds the trustee.dev/v1alpha1 API: the custom resources
// through which the operator runs Key Trustee Servers.
//
//   - KeyTrusteeServer: an active/passive pair (or a standalone server) with
//     its PostgreSQL, storage, TLS certificate and OpenPGP identity.
//   - Organization: an organization on a server, its contacts, its auth code
//     (from a Secret) and which of its clients are enabled or disabled.
//   - BackupSchedule: encrypted backups of a server on a cron schedule.
//
// Validation lives in the CRDs (OpenAPI schema and CEL rules), so a bad spec
// is refused by `kubectl apply` without a webhook. The deepcopy functions and
// the CRDs under config/crd/bases are generated: `make generate manifests`.
//
// +kubebuilder:object:generate=true
// +groupName=trustee.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the group and version of this API.
var GroupVersion = schema.GroupVersion{Group: "trustee.dev", Version: "v1alpha1"}

var (
	// SchemeBuilder registers this package's kinds with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds this package's kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers the kinds and their lists, and the common
// meta/v1 types (ListOptions, Status, ...) for this group version.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&KeyTrusteeServer{}, &KeyTrusteeServerList{},
		&Organization{}, &OrganizationList{},
		&BackupSchedule{}, &BackupScheduleList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
